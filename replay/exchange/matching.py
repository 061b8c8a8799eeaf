"""The simulator's matching engine: our orders against the replayed market. Pure, deterministic.

- Market orders walk the current replayed book level by level (the fill price is the volume-
  weighted price across levels, so slippage is real). Liquidity we took stays taken until the
  replay updates that level.
- A limit order that crosses the book on arrival takes liquidity up to its price (taker); the rest
  rests (GTC), expires (IOC), or the whole order expires unless it can fill completely (FOK).
  LIMIT_MAKER is rejected if it would take.
- A resting limit joins the back of the queue: the volume already at its price on arrival is
  ahead of it. Replayed trades at its price consume that queue first; a trade through its price
  fills it (the queue at that price is gone). If the replayed book moves through it, it fills at
  its own price. Fills of resting orders are maker fills.
- Balances: free and locked per asset; commission is charged in the asset received, at the maker
  or taker rate, as Binance does without BNB discounts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Protocol

import msgspec

from replay.book import OrderBook
from replay.exchange import errors
from replay.exchange.errors import BinanceError
from replay.exchange.symbols import SymbolRules
from replay.lane.state import LaneState

EIGHT = Decimal("0.00000001")


class Counted(Protocol):
    """A fault that counts the requests or fills it changed (the harness's evidence)."""

    applied: int


class Status(StrEnum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


_OPEN = (Status.NEW, Status.PARTIALLY_FILLED)
"""A module constant: reading an enum member off its class (`Status.NEW`) is a class attribute
lookup each time, and `is_open` is asked a few times per order."""


@dataclass(slots=True)
class Balance:
    free: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)


@dataclass(slots=True)
class Account:
    api_key: str
    balances: dict[str, Balance] = field(default_factory=dict)

    def balance(self, asset: str) -> Balance:
        balance = self.balances.get(asset)
        if balance is None:
            balance = self.balances[asset] = Balance()
        return balance


class SimFill(msgspec.Struct, gc=False):
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    is_maker: bool
    time_ms: int
    realized_pnl: Decimal = Decimal(0)
    """Futures: the PnL this fill realised, in the margin asset (spot: 0)."""


class SimOrder(msgspec.Struct, gc=False):
    """One order of the ground truth. The venue keeps every order for the run (the harness counts
    lost and duplicated orders from them), so orders and fills are structs the cyclic garbage
    collector does not track (they refer to no container of their own: fills are a tuple). A long
    run under load keeps a great many of them, and a full collection that walked them all would
    pause the event loop and show in the venue's round-trip tail."""

    order_id: int
    client_order_id: str
    api_key: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time_ms: int
    executed_qty: Decimal = Decimal(0)
    cumm_quote: Decimal = Decimal(0)
    status: Status = Status.NEW
    update_ms: int = 0
    working_time_ms: int = -1
    queue_ahead: Decimal = Decimal(0)
    arrival_mid: float | None = None
    connection: str | None = None
    """The client's `ip:port` of the TCP connection the order came on: which client process
    sent it, as the transport says (two writers behind one proxy still have two connections)."""
    fills: tuple[SimFill, ...] = ()
    locked: Decimal = Decimal(0)
    """What this order still holds locked (quote for buys, base for sells)."""
    position_side: str = ""
    """Futures: BOTH (one-way mode), LONG or SHORT (hedge mode); spot: empty."""
    reduce_only: bool = False
    """Futures: the order may only reduce the position."""

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN


OrderListener = Callable[[SimOrder, str, SimFill | None], None]
"""Called with the order's state right after each event: NEW, TRADE (with the fill), CANCELED,
EXPIRED, as Binance's executionReport `x` (execution type) reports them."""


_ZERO = Decimal(0)


def _d(value: float) -> Decimal:
    return Decimal(repr(value)) if value else _ZERO  # zero: an empty level, often


def _crosses(book_price: float, side: str, limit: Decimal) -> bool:
    """Whether an order on `side` with this limit takes a level at `book_price`. Compared as
    floats: both are the nearest double to a price of at most 8 decimals, so equal prices
    compare equal and no level needs to become a Decimal to be judged."""
    return book_price <= float(limit) if side == "BUY" else book_price >= float(limit)


class MatchingEngine:
    def __init__(
        self,
        rules: dict[str, SymbolRules],
        *,
        clock_ms: Callable[[], int],
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
        recent_client_ids: int = 10_000,
    ) -> None:
        self.rules = rules
        self.clock_ms = clock_ms
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.books: dict[str, OrderBook] = {}
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, SimOrder] = {}
        self.open: dict[str, dict[int, None]] = {s: {} for s in rules}
        """Open order ids per symbol, in arrival order (a dict: cancels are O(1))."""
        self.fills: list[SimFill] = []
        self.last_trade: dict[str, float] = {}
        self._consumed: dict[tuple[str, str, float], float] = {}
        self._client_ids: dict[tuple[str, str], OrderedDict[str, int]] = {}
        self._recent_limit = recent_client_ids
        self._next_order_id = 1
        self._next_trade_id = 1
        self._last_mid: tuple[float, Decimal] = (0.0, _ZERO)
        self.listeners: list[OrderListener] = []
        self.fill_cap: Decimal | None = None
        self.fill_cap_fault: Counted | None = None
        """The partial-fills fault in force: each fill the cap cuts counts as applied."""
        """Partial-fill-only mode (a venue fault): no order fills beyond this share of its
        quantity while set."""

    # --- setup ------------------------------------------------------------------------------ -

    def add_account(self, api_key: str, balances: dict[str, Decimal]) -> Account:
        account = Account(api_key, {a: Balance(free=q) for a, q in balances.items()})
        self.accounts[api_key] = account
        return account

    def attach_book(self, symbol: str, book: OrderBook) -> None:
        self.books[symbol] = book

    def rules_for(self, symbol: str) -> SymbolRules:
        rules = self.rules.get(symbol)
        if rules is None:
            raise errors.INVALID_SYMBOL
        return rules

    # --- market events ------------------------------------------------------------------------

    def share_with_lane(self, state: LaneState) -> None:
        """A trade on a symbol with resting orders is the Python path's: it may fill them."""
        state.busy.update(symbol for symbol, orders in self.open.items() if orders)

    def has_book_interest(self, symbol: str) -> bool:
        """Book changes matter only with resting orders or liquidity we took to give back."""
        return bool(self.open.get(symbol)) or bool(self._consumed)

    def on_book_levels(
        self, symbol: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]]
    ) -> None:
        """The replay changed these levels: liquidity we took there is replenished by the venue."""
        for price, _ in bids:
            self._consumed.pop((symbol, "bids", price), None)
        for price, _ in asks:
            self._consumed.pop((symbol, "asks", price), None)
        self._match_crossed_resting(symbol)

    def on_book_reset(self, symbol: str) -> None:
        for key in [k for k in self._consumed if k[0] == symbol]:
            del self._consumed[key]
        self._match_crossed_resting(symbol)

    def on_trade(self, symbol: str, price: float, qty: float, buyer_is_maker: bool) -> None:
        self.last_trade[symbol] = price
        available = _d(qty)
        # a seller-initiated trade (buyer is maker) hits bids: our resting buys
        side = "BUY" if buyer_is_maker else "SELL"
        trade_price = _d(price)
        for order_id in list(self.open.get(symbol, ())):
            if available <= 0:
                break
            order = self.orders[order_id]
            if order.side != side or not order.is_open:  # a fill may close another (futures)
                continue
            through = trade_price < order.price if side == "BUY" else trade_price > order.price
            at_price = trade_price == order.price
            if not (through or at_price):
                continue
            if at_price and not through:
                if order.queue_ahead >= available:
                    order.queue_ahead -= available
                    continue
                fillable = available - order.queue_ahead
                order.queue_ahead = _ZERO
            else:
                fillable = available
            qty_fill = self.fillable(order, min(order.remaining, fillable))
            if qty_fill <= 0:
                continue
            self._fill(order, order.price, qty_fill, is_maker=True)
            available -= qty_fill

    # --- orders ----------------------------------------------------------------------------- -

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
        rules = self.rules_for(symbol)
        account = self.accounts[api_key]
        ids = self._client_ids.get((api_key, symbol))
        if ids is None:
            ids = self._client_ids[(api_key, symbol)] = OrderedDict()
        if client_order_id in ids:
            raise errors.DUPLICATE_ORDER
        book = self.books.get(symbol)
        mid = book.mid() if book is not None else None
        now = self.clock_ms()
        order = SimOrder(
            order_id=self._next_order_id,
            client_order_id=client_order_id,
            api_key=api_key,
            symbol=symbol,
            side=side,
            type=order_type,
            time_in_force=time_in_force or ("GTC" if order_type != "MARKET" else ""),
            price=price or _ZERO,
            orig_qty=quantity or _ZERO,
            orig_quote_qty=quote_order_qty or _ZERO,
            time_ms=now,
            update_ms=now,
            arrival_mid=mid,
            connection=connection,
        )
        if position_side:  # futures only: spot orders keep the defaults without a keyword each
            order.position_side = position_side
            order.reduce_only = reduce_only
        if order_type == "MARKET":
            self._validate_market(order, rules, book)
            plan = self._plan_market(order, rules, book)  # type: ignore[arg-type]
        else:
            self._validate_limit(order, rules, mid)
            plan = self._plan_limit(order, book)
        plan = self._trim(order, plan)
        self._reserve(order, account, rules, plan)
        self._next_order_id += 1
        self.orders[order.order_id] = order
        ids[client_order_id] = order.order_id
        if len(ids) > self._recent_limit:
            self._forget_old_client_ids(ids)
        self._notify(order, "NEW", None)
        for fill_price, fill_qty in plan:
            self._fill(order, fill_price, fill_qty, is_maker=False)
        self._finish_placement(order, book)
        return order

    def _forget_old_client_ids(self, ids: OrderedDict[str, int]) -> None:
        """Keep the client ids of open orders and of the most recent closed ones. An open order
        met at the oldest end goes to the newest end and is judged again later: it must not
        stop the closed ones behind it from leaving. A few moves per order at most, so many
        open orders cost each placement a bounded amount of work."""
        moves = 2
        while len(ids) > self._recent_limit:
            oldest, oldest_id = ids.popitem(last=False)
            if not self.orders[oldest_id].is_open:
                continue
            ids[oldest] = oldest_id  # back, at the newest end: judged again later
            if not moves:
                ids.move_to_end(oldest, last=False)  # no move left: it stays the oldest
                return
            moves -= 1

    def _validate_market(self, order: SimOrder, rules: SymbolRules, book: OrderBook | None) -> None:
        if order.orig_qty <= 0 and order.orig_quote_qty <= 0:
            raise errors.BinanceError(
                -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
            )
        if book is None or book.best_bid() is None or book.best_ask() is None:
            raise errors.MARKET_CLOSED
        if order.orig_qty > 0:
            rules.check_qty(order.orig_qty)
            reference = _d(book.mid() or 0)
            rules.check_notional(order.orig_qty * reference, is_market=True)
        else:
            rules.check_notional(order.orig_quote_qty, is_market=True)

    def _validate_limit(self, order: SimOrder, rules: SymbolRules, mid: float | None) -> None:
        if order.price <= 0:
            raise errors.mandatory("price")
        if order.orig_qty <= 0:
            raise errors.mandatory("quantity")
        if order.type == "LIMIT" and order.time_in_force not in ("GTC", "IOC", "FOK"):
            raise BinanceError(-1115, "Invalid timeInForce.")
        rules.check_price(order.price)
        rules.check_qty(order.orig_qty)
        rules.check_notional(order.price * order.orig_qty, is_market=False)
        rules.check_percent_price(order.price, self._decimal_mid(mid) if mid else None)

    def _decimal_mid(self, mid: float) -> Decimal:
        """The mid as a Decimal, made once per mid: it moves only with the book, and orders
        arrive many to a book update."""
        last = self._last_mid
        if last[0] != mid:
            last = self._last_mid = (mid, _d(mid))
        return last[1]

    def _levels(
        self, symbol: str, book: OrderBook, side: str, limit: Decimal | None = None
    ) -> Iterator[tuple[Decimal, Decimal]]:
        """Levels a taker on `side` can take, best first, net of liquidity we already took, up
        to and including `limit` if given (the levels a limit order crosses). Lazy: a resting
        order looks at one level, not the whole book, and that level is compared as the book's
        float before anything becomes a Decimal."""
        book_side, name = (book.asks, "asks") if side == "BUY" else (book.bids, "bids")
        consumed = self._consumed
        for price, qty in book_side.levels():
            if limit is not None and not _crosses(price, side, limit):
                return
            left = qty - consumed.get((symbol, name, price), 0.0) if consumed else qty
            if left > 1e-12:
                yield _d(price), _d(left)

    def _plan_market(
        self, order: SimOrder, rules: SymbolRules, book: OrderBook
    ) -> list[tuple[Decimal, Decimal]]:
        plan = []
        remaining_qty = order.orig_qty
        remaining_quote = order.orig_quote_qty
        for price, qty in self._levels(order.symbol, book, order.side):
            if order.orig_qty > 0:
                take = min(remaining_qty, qty)
                remaining_qty -= take
            else:
                affordable = remaining_quote / price
                if rules.step_size:
                    affordable = affordable.quantize(rules.step_size, rounding=ROUND_DOWN)
                take = min(affordable, qty)
                remaining_quote -= take * price
            if take <= 0:
                break
            plan.append((price, take))
            if order.orig_qty > 0 and remaining_qty <= 0:
                break
            if order.orig_qty <= 0 and remaining_quote < price * (rules.step_size or EIGHT):
                break
        if order.orig_qty <= 0:
            order.orig_qty = sum((q for _, q in plan), _ZERO)
        return plan

    def _plan_limit(self, order: SimOrder, book: OrderBook | None) -> list[tuple[Decimal, Decimal]]:
        if book is None:
            return []  # no market: nothing to take (a FOK or IOC then expires)
        best = book.asks.best() if order.side == "BUY" else book.bids.best()
        if best is None or not _crosses(best[0], order.side, order.price):
            return []  # the best level does not cross, so none does: most limits rest here
        plan = []
        remaining = order.orig_qty
        for price, qty in self._levels(order.symbol, book, order.side, order.price):
            if remaining <= 0:
                break
            take = min(remaining, qty)
            plan.append((price, take))
            remaining -= take
        if plan and order.type == "LIMIT_MAKER":
            raise errors.WOULD_TAKE
        if order.time_in_force == "FOK" and remaining > 0:
            return []  # nothing fills; the order expires
        return plan

    def _reserve(
        self,
        order: SimOrder,
        account: Account,
        rules: SymbolRules,
        plan: list[tuple[Decimal, Decimal]],
    ) -> None:
        taken = cost = _ZERO
        for price, qty in plan:
            taken += qty
            cost += price * qty
        if order.side == "BUY":
            # a buy locks what its taking part costs plus its resting remainder at its price
            need = cost if order.type == "MARKET" else cost + (order.orig_qty - taken) * order.price
            asset = rules.quote
        else:
            need = taken if order.type == "MARKET" else order.orig_qty
            asset = rules.base
        balance = account.balance(asset)
        if balance.free < need:
            raise errors.INSUFFICIENT_BALANCE
        balance.free -= need
        balance.locked += need
        order.locked = need

    def _finish_placement(self, order: SimOrder, book: OrderBook | None) -> None:
        if order.executed_qty >= order.orig_qty and order.orig_qty > 0:
            order.status = Status.FILLED
        elif order.type == "MARKET" or order.time_in_force in ("IOC", "FOK"):
            order.status = Status.EXPIRED
            self._release(order)
            self._notify(order, "EXPIRED", None)
            return
        else:
            order.status = Status.PARTIALLY_FILLED if order.executed_qty > 0 else Status.NEW
            order.working_time_ms = order.time_ms
            if book is not None:
                own_side = book.bids if order.side == "BUY" else book.asks
                order.queue_ahead = _d(own_side.qty_at(float(order.price)))
            self.open[order.symbol][order.order_id] = None
        if not order.is_open:
            self._release(order)

    def cancel(
        self, api_key: str, symbol: str, *, order_id: int | None, client_order_id: str | None
    ) -> SimOrder:
        order = self._find(api_key, symbol, order_id, client_order_id, for_cancel=True)
        if not order.is_open:
            raise errors.UNKNOWN_ORDER_CANCEL
        order.status = Status.CANCELED
        order.update_ms = self.clock_ms()
        del self.open[symbol][order.order_id]
        self._release(order)
        self._notify(order, "CANCELED", None)
        return order

    def query(
        self, api_key: str, symbol: str, *, order_id: int | None, client_order_id: str | None
    ) -> SimOrder:
        return self._find(api_key, symbol, order_id, client_order_id, for_cancel=False)

    def _find(
        self,
        api_key: str,
        symbol: str,
        order_id: int | None,
        client_order_id: str | None,
        *,
        for_cancel: bool,
    ) -> SimOrder:
        self.rules_for(symbol)
        missing = errors.UNKNOWN_ORDER_CANCEL if for_cancel else errors.UNKNOWN_ORDER_QUERY
        if order_id is None and client_order_id:
            ids = self._client_ids.get((api_key, symbol))
            order_id = ids.get(client_order_id) if ids is not None else None
        if order_id is None:
            raise missing
        order = self.orders.get(order_id)
        if order is None or order.api_key != api_key or order.symbol != symbol:
            raise missing
        if client_order_id and order.client_order_id != client_order_id:
            raise missing
        return order

    def open_orders(self, api_key: str, symbol: str | None) -> list[SimOrder]:
        symbols = [symbol] if symbol else list(self.open)
        return [
            self.orders[i]
            for s in symbols
            for i in self.open.get(s, ())
            if self.orders[i].api_key == api_key
        ]

    # --- fills ------------------------------------------------------------------------------ -

    def _match_crossed_resting(self, symbol: str) -> None:
        book = self.books.get(symbol)
        if book is None:
            return
        for order_id in list(self.open.get(symbol, ())):
            order = self.orders[order_id]
            for price, qty in self._levels(symbol, book, order.side, order.price):
                if not order.is_open:
                    break
                take = self.fillable(order, min(order.remaining, qty))
                if take <= 0:
                    break
                name = "asks" if order.side == "BUY" else "bids"
                key = (symbol, name, float(price))
                self._consumed[key] = self._consumed.get(key, 0.0) + float(take)
                self._fill(order, order.price, take, is_maker=True)

    def _fill(self, order: SimOrder, price: Decimal, qty: Decimal, *, is_maker: bool) -> None:
        rules = self.rules[order.symbol]
        account = self.accounts[order.api_key]
        book = self.books.get(order.symbol)
        if not is_maker and book is not None:
            name = "asks" if order.side == "BUY" else "bids"
            key = (order.symbol, name, float(price))
            self._consumed[key] = self._consumed.get(key, 0.0) + float(qty)
        quote_qty = (price * qty).quantize(EIGHT)
        rate = self.maker_fee if is_maker else self.taker_fee
        commission, commission_asset, realized = self._settle(
            order, rules, account, price, qty, quote_qty, rate
        )
        now = self.clock_ms()
        fill = SimFill(
            trade_id=self._next_trade_id,
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            qty=qty,
            quote_qty=quote_qty,
            commission=commission,
            commission_asset=commission_asset,
            is_maker=is_maker,
            time_ms=now,
            realized_pnl=realized,
        )
        self._next_trade_id += 1
        order.executed_qty += qty
        order.cumm_quote += quote_qty
        order.update_ms = now
        order.fills = (*order.fills, fill)
        self.fills.append(fill)
        if order.executed_qty >= order.orig_qty:
            order.status = Status.FILLED
            self.open[order.symbol].pop(order.order_id, None)
            self._release(order)
        else:
            order.status = Status.PARTIALLY_FILLED
        self._notify(order, "TRADE", fill)

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
        """Spot settlement of a fill: balances move, commission in the asset received. Returns
        (commission, its asset, realised PnL: none on spot)."""
        base, quote = account.balance(rules.base), account.balance(rules.quote)
        if order.side == "BUY":
            commission = (qty * rate).quantize(EIGHT)
            spent = quote_qty
            release = spent if order.type == "MARKET" else min(order.locked, qty * order.price)
            quote.locked -= release
            quote.free += release - spent
            order.locked -= release
            base.free += qty - commission
            return commission, rules.base, _ZERO
        commission = (quote_qty * rate).quantize(EIGHT)
        base.locked -= qty
        order.locked -= qty
        quote.free += quote_qty - commission
        return commission, rules.quote, _ZERO

    def _release(self, order: SimOrder) -> None:
        if order.locked <= 0:
            order.locked = _ZERO
            return
        rules = self.rules[order.symbol]
        asset = rules.quote if order.side == "BUY" else rules.base
        balance = self.accounts[order.api_key].balance(asset)
        balance.locked -= order.locked
        balance.free += order.locked
        order.locked = _ZERO

    def _notify(self, order: SimOrder, execution_type: str, fill: SimFill | None) -> None:
        for listener in self.listeners:
            listener(order, execution_type, fill)

    def _trim(
        self, order: SimOrder, plan: list[tuple[Decimal, Decimal]]
    ) -> list[tuple[Decimal, Decimal]]:
        if self.fill_cap is None:
            return plan
        allowed = self.fillable(order, sum((q for _, q in plan), _ZERO))
        trimmed = []
        for price, qty in plan:
            take = min(qty, allowed)
            if take <= 0:
                break
            trimmed.append((price, take))
            allowed -= take
        return trimmed

    def fillable(self, order: SimOrder, wanted: Decimal) -> Decimal:
        """How much of `wanted` the order may still fill (partial-fill-only mode caps it)."""
        if self.fill_cap is None:
            return wanted
        step = self.rules[order.symbol].step_size or EIGHT
        allowed = (order.orig_qty * self.fill_cap).quantize(step, rounding=ROUND_DOWN)
        room = max(_ZERO, min(wanted, allowed - order.executed_qty))
        if room < wanted and self.fill_cap_fault is not None:
            self.fill_cap_fault.applied += 1
        return room
