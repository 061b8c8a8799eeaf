"""The matching engine of a futures venue: the spot engine's matching (queue position, levels
taken, replenishment) with the futures ledger in place of balances.

An order is checked by the ledger before it is planned (position side, reduce-only, margin), so
a reduce-only order larger than the position is cut to it before it can take liquidity. A fill
is settled into the position and the wallet; an open order locks nothing, its margin is counted
by the ledger's margin check. `GTX` (post-only) is refused (-5022) when it would take.

The replay loop feeds the mark price (`on_mark`: liquidations) and funding times
(`apply_funding`); both tell the listeners, as the exchange's user data stream does.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from replay.book import OrderBook
from replay.exchange import errors
from replay.exchange.futures import refusals
from replay.exchange.futures.contract import Contract
from replay.exchange.futures.ledger import (
    FundingPayment,
    FuturesLedger,
    Liquidation,
    OpenOrderMargin,
)
from replay.exchange.matching import (
    EIGHT,
    Account,
    MatchingEngine,
    SimFill,
    SimOrder,
    Status,
)
from replay.exchange.symbols import SymbolRules

__all__ = ["FuturesMatchingEngine"]

_ZERO = Decimal(0)

AccountListener = Callable[[str, str, list[str]], None]
"""Called with (api key, reason, symbols) after the wallet or positions change otherwise than
by an order's fill: FUNDING_FEE, and the liquidation's ORDER."""


def contracts_of(rules: dict[str, SymbolRules], *, inverse: bool) -> dict[str, Contract]:
    return {
        symbol: Contract(
            inverse=inverse,
            size=rule.contract_size,
            maint_rate=Decimal(rule.raw.get("maintMarginPercent", "0.5")) / 100,
        )
        for symbol, rule in rules.items()
    }


class FuturesMatchingEngine(MatchingEngine):
    def __init__(
        self,
        rules: dict[str, SymbolRules],
        *,
        inverse: bool,
        clock_ms: Callable[[], int],
        maker_fee: Decimal = Decimal("0.0002"),
        taker_fee: Decimal = Decimal("0.0005"),
    ) -> None:
        super().__init__(rules, clock_ms=clock_ms, maker_fee=maker_fee, taker_fee=taker_fee)
        self.inverse = inverse
        self.ledger = FuturesLedger(
            contracts_of(rules, inverse=inverse),
            {symbol: rule.margin_asset for symbol, rule in rules.items()},
            taker_fee=taker_fee,
        )
        self.account_listeners: list[AccountListener] = []

    def add_account(self, api_key: str, balances: dict[str, Decimal]) -> Account:
        self.ledger.add_account(api_key, balances)
        return super().add_account(api_key, {})  # the spot side holds nothing

    # --- orders -------------------------------------------------------------------------------

    def open_margins(self, api_key: str) -> list[OpenOrderMargin]:
        """What the account's open orders could still open (their margin)."""
        account = self.ledger.accounts[api_key]
        margins = []
        for order in self.open_orders(api_key, None):
            if order.reduce_only:
                continue
            _, opening = self.ledger.split(
                account, order.symbol, order.position_side, order.side, order.remaining
            )
            if opening > 0:
                signed = opening if order.side == "BUY" else -opening
                margins.append(
                    OpenOrderMargin(
                        symbol=order.symbol,
                        position_side=order.position_side,
                        signed_qty=signed,
                        price=order.price,
                    )
                )
        return margins

    def place(
        self,
        api_key: str,
        *,
        symbol: str,
        side: str,
        order_type: str,
        quantity: Decimal | None,
        quote_order_qty: Decimal | None,
        price: Decimal | None,
        time_in_force: str | None,
        client_order_id: str,
        connection: str | None = None,
        position_side: str = "",
        reduce_only: bool = False,
    ) -> SimOrder:
        self.rules_for(symbol)
        account = self.ledger.accounts[api_key]
        position_side = self.ledger.position_side_for(account, position_side or None)
        if quantity is None or quantity <= 0:
            raise errors.mandatory("quantity")
        ids = self._client_ids.get((api_key, symbol))
        if ids is not None and client_order_id in ids:
            raise refusals.DUPLICATE_CLIENT_ID
        reference = price if order_type != "MARKET" and price else self._reference(symbol)
        allowed = self.ledger.check_new_order(
            api_key,
            symbol=symbol,
            position_side=position_side,
            side=side,
            qty=quantity,
            price=reference,
            reduce_only=reduce_only,
            orders=self.open_margins(api_key),
        )
        return super().place(
            api_key,
            symbol=symbol,
            side=side,
            order_type=order_type,
            quantity=allowed,
            quote_order_qty=None,
            price=price,
            time_in_force=time_in_force,
            client_order_id=client_order_id,
            connection=connection,
            position_side=position_side,
            reduce_only=reduce_only,
        )

    def _reference(self, symbol: str) -> Decimal:
        """The price a market order's margin is judged at: the mark, else the book's mid."""
        mark = self.ledger.marks.get(symbol)
        if mark is not None:
            return mark
        book = self.books.get(symbol)
        mid = book.mid() if book is not None else None
        if mid is None:
            raise errors.MARKET_CLOSED
        return Decimal(repr(mid))

    def _validate_limit(self, order: SimOrder, rules: SymbolRules, mid: float | None) -> None:
        if order.type == "LIMIT" and order.time_in_force == "GTX":
            order.time_in_force = "GTC"  # validated as a GTC limit, then judged as post-only
            try:
                super()._validate_limit(order, rules, mid)
            finally:
                order.time_in_force = "GTX"
            return
        super()._validate_limit(order, rules, mid)

    def _plan_limit(self, order: SimOrder, book: OrderBook | None) -> list[tuple[Decimal, Decimal]]:
        plan = super()._plan_limit(order, book)
        if plan and order.time_in_force == "GTX":
            raise refusals.POST_ONLY_REJECTED
        return plan

    def _reserve(
        self,
        order: SimOrder,
        account: Account,
        rules: SymbolRules,
        plan: list[tuple[Decimal, Decimal]],
    ) -> None:
        order.locked = _ZERO  # margin, not a lock: the ledger's check counts open orders

    def _settle(
        self,
        order: SimOrder,
        rules: SymbolRules,
        account: Account,
        price: Decimal,
        qty: Decimal,
        quote_qty: Decimal,
        rate: Decimal,
    ) -> tuple[Decimal, str, Decimal]:
        realized, commission = self.ledger.settle_fill(
            order.api_key,
            symbol=order.symbol,
            position_side=order.position_side,
            side=order.side,
            qty=qty,
            price=price,
            fee_rate=rate,
            time_ms=self.clock_ms(),
        )
        if order.reduce_only and order.is_open:
            self._cut_reduce_only(order, qty)
        self._trim_resting_reduce_only(order)
        return commission.quantize(EIGHT), rules.margin_asset, realized

    def _trim_resting_reduce_only(self, filled: SimOrder) -> None:
        """After any fill, the account's other resting reduce-only orders on that position
        never outgrow it: cut to what is held, canceled when nothing is left to reduce (as
        Binance cancels reduce-only orders once the position is closed)."""
        position = self.ledger.accounts[filled.api_key].positions.get(
            (filled.symbol, filled.position_side)
        )
        held = position.qty if position is not None else _ZERO
        for order in self.open_orders(filled.api_key, filled.symbol):
            if order is filled or not order.reduce_only:
                continue
            if order.position_side != filled.position_side:
                continue
            reduces = (held > 0 and order.side == "SELL") or (held < 0 and order.side == "BUY")
            if not reduces:
                self.cancel(
                    order.api_key, order.symbol, order_id=order.order_id, client_order_id=None
                )
            elif order.remaining > abs(held):
                order.orig_qty -= order.remaining - abs(held)

    def _cut_reduce_only(self, order: SimOrder, filling: Decimal) -> None:
        """A resting reduce-only order never outgrows the position: what is left of it beyond
        the position (after this fill) is cut, as Binance expires it."""
        position = self.ledger.accounts[order.api_key].positions.get(
            (order.symbol, order.position_side)
        )
        held = abs(position.qty) if position is not None else _ZERO
        left = order.orig_qty - order.executed_qty - filling
        if left > held:
            order.orig_qty -= left - held

    # --- the market ---------------------------------------------------------------------------

    def on_mark(self, symbol: str, mark: Decimal) -> list[Liquidation]:
        """A new mark price: positions under maintenance are liquidated."""
        ledger = self.ledger
        ledger.marks[symbol] = mark
        done = []
        for account, position in ledger.underwater(symbol):
            for order in self.open_orders(account.api_key, symbol):
                self.cancel(account.api_key, symbol, order_id=order.order_id, client_order_id=None)
            if position.qty == 0:
                continue
            side = "SELL" if position.qty > 0 else "BUY"
            qty = abs(position.qty)
            position_side = position.side
            record = ledger.liquidate(account, position, self.clock_ms())
            self._record_liquidation(record, side, qty, position_side)
            done.append(record)
            for listener in self.account_listeners:
                listener(account.api_key, "ORDER", [symbol])
        return done

    def _record_liquidation(
        self, record: Liquidation, side: str, qty: Decimal, position_side: str
    ) -> None:
        """The liquidation as an order of the account, filled at the bankruptcy price: what the
        exchange shows (client id `autoclose-...`) and ground truth keeps."""
        now = self.clock_ms()
        order = SimOrder(
            order_id=self._next_order_id,
            client_order_id=f"autoclose-{now}",
            api_key=record.api_key,
            symbol=record.symbol,
            side=side,
            type="LIMIT",
            time_in_force="IOC",
            price=record.price,
            orig_qty=qty,
            orig_quote_qty=_ZERO,
            time_ms=now,
            update_ms=now,
            executed_qty=qty,
            cumm_quote=(record.price * qty).quantize(EIGHT),
            status=Status.FILLED,
            position_side=position_side,
            reduce_only=True,
        )
        fill = SimFill(
            trade_id=self._next_trade_id,
            order_id=order.order_id,
            symbol=record.symbol,
            side=side,
            price=record.price,
            qty=qty,
            quote_qty=order.cumm_quote,
            commission=_ZERO,
            commission_asset=self.rules[record.symbol].margin_asset,
            is_maker=False,
            time_ms=now,
            realized_pnl=-record.loss,
        )
        order.fills = (fill,)
        self._next_order_id += 1
        self._next_trade_id += 1
        self.orders[order.order_id] = order
        self.fills.append(fill)
        self._notify(order, "TRADE", fill)

    def apply_funding(self, symbol: str, *, rate: Decimal, mark: Decimal) -> list[FundingPayment]:
        paid = self.ledger.apply_funding(symbol, rate=rate, mark=mark, time_ms=self.clock_ms())
        for api_key in dict.fromkeys(p.api_key for p in paid):
            for listener in self.account_listeners:
                listener(api_key, "FUNDING_FEE", [symbol])
        return paid

    def has_open(self, api_key: str, symbol: str) -> bool:
        return any(self.orders[i].api_key == api_key for i in self.open.get(symbol, ()))
