"""Versioned bus messages.

Every message carries `v` (schema version) and `correlation_id`, which is set where a chain of
events starts (a tick) and copied into everything that follows (intent, order, fills), so that one
id ties the log lines of every service together. Quantities that reach the venue or a position are
Decimal; market data stays float for speed and is quantized when it becomes an order price.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Literal

import msgspec

SCHEMA_VERSION = 1


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    v: int = SCHEMA_VERSION
    correlation_id: str = ""


# --- market data: md.{venue}.{symbol} -------------------------------------------------------


class Trade(Message, tag="trade", frozen=True, kw_only=True):
    venue: str
    symbol: str
    trade_id: int
    price: float
    qty: float
    buyer_is_maker: bool
    exchange_ts_ms: int
    recv_ts_ns: int
    feed: str = ""


class Quote(Message, tag="quote", frozen=True, kw_only=True):
    """Best bid and offer (Binance bookTicker)."""

    venue: str
    symbol: str
    update_id: int
    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float
    recv_ts_ns: int
    feed: str = ""


class BookTop(Message, tag="book", frozen=True, kw_only=True):
    """The top levels of the synchronised diff-depth book after an update was applied."""

    venue: str
    symbol: str
    update_id: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    exchange_ts_ms: int
    recv_ts_ns: int
    feed: str = ""


class MarkPrice(Message, tag="mark_price", frozen=True, kw_only=True):
    """Futures: the venue's mark price and funding (Binance `@markPrice@1s`)."""

    venue: str
    symbol: str
    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_ms: int
    exchange_ts_ms: int
    recv_ts_ns: int
    feed: str = ""


class FeedEvent(Message, tag="feed_event", frozen=True, kw_only=True):
    """Something happened to a feed: connect, disconnect, resync, switch, stale."""

    venue: str
    symbol: str
    feed: str
    event: str
    reason: str
    ts_ns: int


# --- trading path ---------------------------------------------------------------------------


class Intent(Message, tag="intent", frozen=True, kw_only=True):
    """What a strategy (or an operator) wants; risk decides whether it becomes an order."""

    intent_id: str
    source: str
    venue: str
    symbol: str
    action: Literal["new", "cancel"] = "new"
    side: Side = Side.BUY
    qty: Decimal = Decimal(0)
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    cancel_intent_id: str = ""
    created_ts_ns: int = 0
    tick_recv_ts_ns: int = 0
    reference_price: float = 0.0
    algo: Literal["", "maker_first", "split", "twap"] = ""
    """How execution works the order: "" sends it as one order; the others are
    engine.core.algos (maker first, volume splitting, gradual entry)."""
    algo_params: dict[str, float | int | str] = msgspec.field(default_factory=dict)


class OrderRequest(Message, tag="order_request", frozen=True, kw_only=True):
    """An intent approved by risk, on its way to execution on orders.{venue}."""

    intent: Intent
    approved_ts_ns: int


class RiskDenial(Message, tag="risk_denial", frozen=True, kw_only=True):
    intent_id: str
    source: str
    check: str
    reason: str
    ts_ns: int


class TradingStateChanged(Message, tag="trading_state", frozen=True, kw_only=True):
    state: str
    previous: str
    reason: str
    ts_ns: int


class Control(Message, tag="control", frozen=True, kw_only=True):
    """An operator command (pause, resume, flatten, halt) on the control stream."""

    command: Literal["pause", "resume", "flatten", "halt"]
    reason: str = ""
    issued_ts_ns: int = 0


class Fill(Message, tag="fill", frozen=True, kw_only=True):
    """One venue trade of one of our orders. Natural key: (venue, trade_id)."""

    venue: str
    symbol: str
    trade_id: int
    client_order_id: str
    intent_id: str
    side: Side
    qty: Decimal
    price: Decimal
    commission: Decimal
    commission_asset: str
    is_maker: bool
    venue_ts_ms: int


class ContractTerms(Message, tag="contract_terms", frozen=True, kw_only=True):
    """Futures: a symbol's contract as the venue's markets define it, published by execution
    when it connects (risk values inverse orders with it). Natural key: (venue, symbol)."""

    venue: str
    symbol: str
    contract_size: Decimal
    """Base units (USD-M, 1) or USD of face value (COIN-M: 10 for ETHUSD_PERP) per contract."""
    inverse: bool
    ts_ns: int


class VenuePosition(Message, tag="venue_position", frozen=True, kw_only=True):
    """Futures: a position as the venue's position endpoint reports it (execution polls it)."""

    venue: str
    symbol: str
    contracts: Decimal
    """Signed: long > 0, short < 0."""
    entry_price: Decimal
    mark_price: float
    liquidation_price: float | None
    """None when the venue names none (flat, or the collateral covers the position)."""
    unrealized_pnl: Decimal
    notional: Decimal
    leverage: int | None
    ts_ns: int
    """When execution asked for it: the report includes everything the venue did before."""
    baseline_contracts: Decimal = Decimal(0)
    """What the account held before this engine's journal began (recovery's baseline)."""

    @property
    def own_contracts(self) -> Decimal:
        """The part of the position that is the engine's: the venue's less the baseline."""
        return self.contracts - self.baseline_contracts


class FundingPaid(Message, tag="funding", frozen=True, kw_only=True):
    """Futures: one funding settlement of our position, as the venue's income history records
    it. Natural key: (venue, tran_id)."""

    venue: str
    symbol: str
    tran_id: str
    income: Decimal
    """Signed as the venue books it: negative when we paid."""
    asset: str
    venue_ts_ms: int


class ExecutionReport(Message, tag="execution_report", frozen=True, kw_only=True):
    """The state of one of our orders changed. Natural key: (client_order_id, seq)."""

    venue: str
    symbol: str
    client_order_id: str
    intent_id: str
    venue_order_id: str
    state: str
    side: Side
    order_type: OrderType
    qty: Decimal
    limit_price: Decimal | None
    filled_qty: Decimal
    avg_price: Decimal | None
    reason: str
    seq: int
    ts_ns: int


class IntentDone(Message, tag="intent_done", frozen=True, kw_only=True):
    """Execution finished working an intent (all its child orders are terminal).
    Natural key: intent_id."""

    venue: str
    symbol: str
    intent_id: str
    side: Side
    qty: Decimal
    filled_qty: Decimal
    outcome: Literal["filled", "partial", "canceled", "rejected"]
    reason: str
    children: int
    ts_ns: int


def intent_done(
    intent: Intent,
    *,
    filled_qty: Decimal,
    outcome: Literal["filled", "partial", "canceled", "rejected"],
    reason: str,
    children: int,
    ts_ns: int,
) -> IntentDone:
    """The end of working `intent`, as its client is told."""
    return IntentDone(
        correlation_id=intent.correlation_id,
        venue=intent.venue,
        symbol=intent.symbol,
        intent_id=intent.intent_id,
        side=intent.side,
        qty=intent.qty,
        filled_qty=filled_qty,
        outcome=outcome,
        reason=reason,
        children=children,
        ts_ns=ts_ns,
    )


BusMessage = (
    Trade
    | Quote
    | BookTop
    | MarkPrice
    | VenuePosition
    | ContractTerms
    | FundingPaid
    | FeedEvent
    | Intent
    | OrderRequest
    | RiskDenial
    | TradingStateChanged
    | Control
    | Fill
    | ExecutionReport
    | IntentDone
)

_encoder = msgspec.json.Encoder(decimal_format="string")
_decoder: msgspec.json.Decoder[BusMessage] = msgspec.json.Decoder(BusMessage)


def encode(message: BusMessage) -> bytes:
    return _encoder.encode(message)


def decode(payload: bytes | str) -> BusMessage:
    """Decode a bus payload; raises msgspec.ValidationError/DecodeError on bad input."""
    return _decoder.decode(payload)
