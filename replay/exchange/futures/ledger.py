"""Futures accounts: wallet balances per margin asset, positions, leverage, margin type and
position mode; the margin check of an order, the settlement of a fill, funding and liquidation.
Pure: no I/O, no clock of its own (every time is passed in), Decimal throughout.

Margin (Binance's rules, one maintenance bracket per symbol):
- initial margin of a position or an open order = notional / leverage; notional at the mark for
  positions, at the order's price (the mark for a market order) for orders;
- cross margin: the wallet balance of the margin asset plus the unrealised PnL of its cross
  positions must cover their initial margins, the open orders' initial margins and the isolated
  margins; a new order whose opening part does not fit is refused (-2019);
- isolated margin: a position holds the initial margin it was opened with (plus funding and
  PnL once closed), and is liquidated on its own;
- liquidation when margin balance < maintenance margin (cross: over the asset's cross
  positions; isolated: the position's isolated margin + its unrealised PnL): the account's open
  orders on the symbol are cancelled and the position is closed at its bankruptcy price (what is
  left of its collateral goes to the insurance fund, as on Binance).

Funding: at each funding time a position pays `contract.funding_fee(qty, mark, rate)` (negative:
receives), out of the wallet (and out of an isolated position's margin).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from replay.exchange.futures import refusals
from replay.exchange.futures.contract import Contract

__all__ = [
    "FundingPayment",
    "FuturesAccount",
    "FuturesLedger",
    "Liquidation",
    "OpenOrderMargin",
    "Position",
]

_ZERO = Decimal(0)
DEFAULT_LEVERAGE = 20
MAX_LEVERAGE = 125
MAX_FUNDING_TIMES = 100_000
"""The funding schedule kept for the judge (a week of 8 h times is 21 per symbol; a game day's
compressed schedule of one per second is a day's worth)."""


@dataclass(slots=True)
class Position:
    symbol: str
    side: str
    """BOTH (one-way mode), LONG or SHORT (hedge mode)."""
    qty: Decimal = _ZERO
    """Signed: long > 0, short < 0 (a hedge-mode SHORT position is negative)."""
    entry: Decimal = _ZERO
    isolated_margin: Decimal = _ZERO
    """Isolated margin type: the collateral this position holds."""
    realized_pnl: Decimal = _ZERO
    update_ms: int = 0


@dataclass(frozen=True, kw_only=True)
class FundingPayment:
    api_key: str
    symbol: str
    position_side: str
    time_ms: int
    rate: Decimal
    mark: Decimal
    qty: Decimal
    amount: Decimal
    """Paid by the account (negative: received), in the margin asset."""
    asset: str


@dataclass(frozen=True, kw_only=True)
class FundingTime:
    """One funding time of a symbol, whoever held it: the schedule a judge prices a position
    against (what a position would have paid had it been held)."""

    symbol: str
    time_ms: int
    rate: Decimal
    mark: Decimal
    per_contract: Decimal
    """What one long contract paid (negative: received), in the margin asset."""
    asset: str


@dataclass(frozen=True, kw_only=True)
class Liquidation:
    api_key: str
    symbol: str
    position_side: str
    qty: Decimal
    """The position's signed quantity when it was closed."""
    entry: Decimal
    mark: Decimal
    price: Decimal
    """The bankruptcy price it was closed at."""
    loss: Decimal
    time_ms: int


@dataclass(slots=True)
class FuturesAccount:
    api_key: str
    wallet: dict[str, Decimal]
    dual_side: bool = False
    leverage: dict[str, int] = field(default_factory=dict)
    isolated: set[str] = field(default_factory=set)
    """Symbols on the ISOLATED margin type (the others are CROSSED)."""
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)

    def leverage_of(self, symbol: str) -> int:
        return self.leverage.get(symbol, DEFAULT_LEVERAGE)

    def position(self, symbol: str, side: str) -> Position:
        found = self.positions.get((symbol, side))
        if found is None:
            found = self.positions[(symbol, side)] = Position(symbol, side)
        return found

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.qty != 0]


@dataclass(frozen=True, kw_only=True)
class OpenOrderMargin:
    """What an open order could still open, for the margin it holds."""

    symbol: str
    position_side: str
    signed_qty: Decimal
    price: Decimal


class FuturesLedger:
    def __init__(
        self,
        contracts: dict[str, Contract],
        margin_assets: dict[str, str],
        *,
        taker_fee: Decimal = Decimal("0.0005"),
    ) -> None:
        self.contracts = contracts
        self.taker_fee = taker_fee
        """What the margin check reserves for an opening order's commission."""
        self.margin_assets = margin_assets
        self.accounts: dict[str, FuturesAccount] = {}
        self.marks: dict[str, Decimal] = {}
        self.funding: list[FundingPayment] = []
        self.funding_times: deque[FundingTime] = deque(maxlen=MAX_FUNDING_TIMES)
        self.liquidations: list[Liquidation] = []

    def add_account(self, api_key: str, wallet: dict[str, Decimal]) -> FuturesAccount:
        account = FuturesAccount(api_key, dict(wallet))
        self.accounts[api_key] = account
        return account

    # --- settings -----------------------------------------------------------------------------

    def set_leverage(self, api_key: str, symbol: str, leverage: int) -> None:
        if not 1 <= leverage <= MAX_LEVERAGE:
            raise refusals.invalid_leverage(leverage)
        self.accounts[api_key].leverage[symbol] = leverage

    def set_margin_type(
        self, api_key: str, symbol: str, isolated: bool, *, has_orders: bool
    ) -> None:
        account = self.accounts[api_key]
        if (symbol in account.isolated) == isolated:
            raise refusals.NO_NEED_MARGIN_TYPE
        if has_orders or any(p.symbol == symbol for p in account.open_positions()):
            raise refusals.MARGIN_TYPE_WITH_POSITION
        if isolated:
            account.isolated.add(symbol)
        else:
            account.isolated.discard(symbol)

    def set_dual_side(self, api_key: str, dual: bool, *, has_orders: bool) -> None:
        account = self.accounts[api_key]
        if account.dual_side == dual:
            raise refusals.NO_NEED_POSITION_SIDE
        if has_orders or account.open_positions():
            raise refusals.POSITION_SIDE_WITH_POSITION
        account.dual_side = dual

    # --- values -------------------------------------------------------------------------------

    def mark(self, symbol: str, fallback: Decimal) -> Decimal:
        return self.marks.get(symbol, fallback)

    def unrealized(self, position: Position) -> Decimal:
        mark = self.marks.get(position.symbol)
        if mark is None or position.qty == 0:
            return _ZERO
        return self.contracts[position.symbol].pnl(position.qty, position.entry, mark)

    def position_margin(self, account: FuturesAccount, position: Position) -> Decimal:
        """Initial margin of a position, at the mark (the entry before any mark is known)."""
        price = self.marks.get(position.symbol, position.entry)
        notional = self.contracts[position.symbol].notional(position.qty, price)
        return notional / account.leverage_of(position.symbol)

    def maint_margin(self, position: Position) -> Decimal:
        price = self.marks.get(position.symbol, position.entry)
        return self.contracts[position.symbol].maint_margin(position.qty, price)

    def order_margin(self, account: FuturesAccount, order: OpenOrderMargin) -> Decimal:
        contract = self.contracts[order.symbol]
        return contract.notional(order.signed_qty, order.price) / account.leverage_of(order.symbol)

    def available(
        self, account: FuturesAccount, asset: str, orders: Iterable[OpenOrderMargin]
    ) -> Decimal:
        """What the asset's cross wallet can still commit: wallet + cross unrealised PnL - the
        cross positions' initial margins - isolated margins - the open orders' margins."""
        free = account.wallet.get(asset, _ZERO)
        for position in account.open_positions():
            if self.margin_assets[position.symbol] != asset:
                continue
            if position.symbol in account.isolated:
                free -= position.isolated_margin
            else:
                free += self.unrealized(position) - self.position_margin(account, position)
        for order in orders:
            if self.margin_assets[order.symbol] == asset:
                free -= self.order_margin(account, order)
        return free

    # --- orders -------------------------------------------------------------------------------

    def position_side_for(self, account: FuturesAccount, given: str | None) -> str:
        """The order's positionSide, checked against the account's mode (-4061)."""
        side = (given or "BOTH").upper()
        if account.dual_side:
            if side not in ("LONG", "SHORT"):
                raise refusals.POSITION_SIDE_MISMATCH
        elif side != "BOTH":
            raise refusals.POSITION_SIDE_MISMATCH
        return side

    def split(
        self, account: FuturesAccount, symbol: str, position_side: str, side: str, qty: Decimal
    ) -> tuple[Decimal, Decimal]:
        """(reducing, opening) parts of an order of `qty` on `side` against the position."""
        position = account.positions.get((symbol, position_side))
        held = position.qty if position is not None else _ZERO
        if position_side == "LONG":
            return (min(qty, held), _ZERO) if side == "SELL" else (_ZERO, qty)
        if position_side == "SHORT":
            return (min(qty, -held), _ZERO) if side == "BUY" else (_ZERO, qty)
        signed = qty if side == "BUY" else -qty
        if held == 0 or (held > 0) == (signed > 0):
            return _ZERO, qty
        reducing = min(qty, abs(held))
        return reducing, qty - reducing

    def check_new_order(
        self,
        api_key: str,
        *,
        symbol: str,
        position_side: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        reduce_only: bool,
        orders: Iterable[OpenOrderMargin],
    ) -> Decimal:
        """Refuse an order the account cannot hold; returns the quantity it may have (a
        reduce-only order larger than the position is cut to it)."""
        account = self.accounts[api_key]
        reducing, opening = self.split(account, symbol, position_side, side, qty)
        if position_side in ("LONG", "SHORT") and reducing and opening:
            opening = _ZERO  # hedge mode: closing more than held is cut to the position
            qty = reducing
        if reduce_only:
            if account.dual_side:
                raise refusals.REDUCE_ONLY_NOT_REQUIRED
            if reducing == 0:
                raise refusals.REDUCE_ONLY_REJECTED
            return reducing
        if position_side in ("LONG", "SHORT") and reducing == 0 and opening == 0:
            raise refusals.REDUCE_ONLY_REJECTED  # closing a hedge side that holds nothing
        if opening > 0:
            asset = self.margin_assets[symbol]
            signed = opening if side == "BUY" else -opening
            wanted = OpenOrderMargin(
                symbol=symbol, position_side=position_side, signed_qty=signed, price=price
            )
            need = self.order_margin(account, wanted) + self._open_fee(symbol, opening, price)
            if need > self.available(account, asset, orders):
                raise refusals.MARGIN_INSUFFICIENT
        return qty

    def _open_fee(self, symbol: str, qty: Decimal, price: Decimal) -> Decimal:
        return self.contracts[symbol].notional(qty, price) * self.taker_fee

    # --- fills --------------------------------------------------------------------------------

    def settle_fill(
        self,
        api_key: str,
        *,
        symbol: str,
        position_side: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        fee_rate: Decimal,
        time_ms: int,
    ) -> tuple[Decimal, Decimal]:
        """Apply a fill to the position and the wallet; returns (realised PnL, commission), both
        in the margin asset."""
        account = self.accounts[api_key]
        contract = self.contracts[symbol]
        asset = self.margin_assets[symbol]
        position = account.position(symbol, position_side)
        signed = qty if side == "BUY" else -qty
        realized = _ZERO
        held = position.qty
        isolated = symbol in account.isolated
        if held != 0 and (held > 0) != (signed > 0):
            closing = min(abs(signed), abs(held))
            closed = closing if held > 0 else -closing
            realized = contract.pnl(closed, position.entry, price)
            if isolated:
                share = position.isolated_margin * closing / abs(held)
                position.isolated_margin -= share
            position.qty = held + (signed if abs(signed) <= abs(held) else -held)
            position.realized_pnl += realized
            opened = abs(signed) - closing
            if position.qty == 0:
                position.entry = _ZERO
                position.isolated_margin = _ZERO
            if opened > 0:  # a one-way position flipped: the rest opens at the fill price
                position.qty = opened if signed > 0 else -opened
                position.entry = price
                if isolated:
                    position.isolated_margin = contract.notional(
                        opened, price
                    ) / account.leverage_of(symbol)
        else:
            position.entry = contract.average_entry(held, position.entry, signed, price)
            position.qty = held + signed
            if isolated:
                position.isolated_margin += contract.notional(qty, price) / account.leverage_of(
                    symbol
                )
        commission = contract.notional(qty, price) * fee_rate
        account.wallet[asset] = account.wallet.get(asset, _ZERO) + realized - commission
        position.update_ms = time_ms
        return realized, commission

    # --- funding and liquidation --------------------------------------------------------------

    def apply_funding(
        self, symbol: str, *, rate: Decimal, mark: Decimal, time_ms: int
    ) -> list[FundingPayment]:
        contract = self.contracts[symbol]
        asset = self.margin_assets[symbol]
        self.funding_times.append(
            FundingTime(
                symbol=symbol,
                time_ms=time_ms,
                rate=rate,
                mark=mark,
                per_contract=contract.funding_fee(Decimal(1), mark, rate),
                asset=asset,
            )
        )
        paid: list[FundingPayment] = []
        for account in self.accounts.values():
            for position in account.open_positions():
                if position.symbol != symbol:
                    continue
                amount = contract.funding_fee(position.qty, mark, rate)
                account.wallet[asset] = account.wallet.get(asset, _ZERO) - amount
                if symbol in account.isolated:
                    position.isolated_margin -= amount
                payment = FundingPayment(
                    api_key=account.api_key,
                    symbol=symbol,
                    position_side=position.side,
                    time_ms=time_ms,
                    rate=rate,
                    mark=mark,
                    qty=position.qty,
                    amount=amount,
                    asset=asset,
                )
                paid.append(payment)
                self.funding.append(payment)
        return paid

    def collateral(self, account: FuturesAccount, position: Position) -> Decimal:
        """What `position` can lose before it is bankrupt: its isolated margin; in cross, the
        asset's wallet plus the other cross positions' unrealised PnL less their maintenance."""
        if position.symbol in account.isolated:
            return position.isolated_margin
        asset = self.margin_assets[position.symbol]
        collateral = account.wallet.get(asset, _ZERO)
        for other in account.open_positions():
            if other is position or other.symbol in account.isolated:
                continue
            if self.margin_assets[other.symbol] == asset:
                collateral += self.unrealized(other) - self.maint_margin(other)
        return collateral

    def liquidation_price(self, account: FuturesAccount, position: Position) -> Decimal | None:
        contract = self.contracts[position.symbol]
        return contract.liquidation_price(
            position.qty, position.entry, self.collateral(account, position)
        )

    def underwater(self, symbol: str) -> list[tuple[FuturesAccount, Position]]:
        """Positions in `symbol` whose margin balance is under their maintenance margin at the
        current mark."""
        found = []
        for account in self.accounts.values():
            for position in account.open_positions():
                if position.symbol != symbol:
                    continue
                balance = self.collateral(account, position) + self.unrealized(position)
                if balance < self.maint_margin(position):
                    found.append((account, position))
        return found

    def liquidate(self, account: FuturesAccount, position: Position, time_ms: int) -> Liquidation:
        """Close the position at its bankruptcy price; the wallet takes the loss."""
        contract = self.contracts[position.symbol]
        asset = self.margin_assets[position.symbol]
        collateral = self.collateral(account, position)
        price = contract.bankruptcy_price(position.qty, position.entry, collateral)
        mark = self.marks[position.symbol]
        if price is None:
            price = mark
        loss = -contract.pnl(position.qty, position.entry, price)
        account.wallet[asset] = account.wallet.get(asset, _ZERO) - loss
        record = Liquidation(
            api_key=account.api_key,
            symbol=position.symbol,
            position_side=position.side,
            qty=position.qty,
            entry=position.entry,
            mark=mark,
            price=price,
            loss=loss,
            time_ms=time_ms,
        )
        position.realized_pnl -= loss
        position.qty = _ZERO
        position.entry = _ZERO
        position.isolated_margin = _ZERO
        position.update_ms = time_ms
        self.liquidations.append(record)
        return record
