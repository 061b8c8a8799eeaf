"""Pre-trade risk checks: each returns a Denial or None. Trading states ACTIVE/REDUCING/HALTED.

A check never raises for a business reason; it denies with a reason a human can read, and the
risk service publishes that denial. Checks are plain functions over plain data so that the same
code judges live intents, replayed intents and property tests.

A number a check cannot judge by (a NaN or infinite limit, reference price, quantity or age) is a
denial, never an approval and never an exception: a NaN compared with a Decimal raises, an
infinite limit lets anything through, and a NaN age is never "too old". The config refuses such
limits (engine.config); these checks hold even if one gets past it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal
from enum import StrEnum

import msgspec

from engine.core.messages import Intent, OrderType, Side


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    """New entries and reductions allowed."""
    REDUCING = "REDUCING"
    """Only intents that reduce an existing position (pause, flatten, stale data)."""
    HALTED = "HALTED"
    """Nothing is sent."""


class Denial(msgspec.Struct, frozen=True, kw_only=True):
    check: str
    reason: str


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_position_qty: Decimal
    max_notional_per_order: Decimal
    max_intent_age_ms: int = 5_000
    max_data_age_ms: int = 2_000
    """No new entries when the last quote or book update is older than this."""
    max_orders_per_window: int = 50
    order_rate_window_ms: int = 10_000
    price_band_percent: float = 5.0
    daily_loss_limit: Decimal = Decimal("500")
    min_liquidation_distance_pct: float = 0.0
    """Futures: no entry closer than this to the liquidation price (0: off)."""
    liquidation_breaker_pct: float = 0.0
    """Futures: closer than this, reduce (0: off)."""
    max_adverse_funding_pct: float = 0.0
    """Futures: a funding rate (percent per funding interval) at or over which a position that
    pays it is reduced and no entry adds to it (0: off)."""


class RiskView(msgspec.Struct, frozen=True, kw_only=True):
    """What the checks see about the world at the moment an intent arrives."""

    trading_state: TradingState
    position_qty: Decimal
    """Filled position in base asset."""
    pending_buy_qty: Decimal = Decimal(0)
    """Approved but not yet filled buy quantity (worst case for position)."""
    pending_sell_qty: Decimal = Decimal(0)
    reference_price: float = 0.0
    """Last mid (or last trade) used to value market orders."""
    now_ns: int = 0
    data_age_ms: float | None = None
    """Age of the freshest quote or book update for the symbol (None: never seen)."""
    bus_degraded: bool = False
    """The bus cannot be relied on (a consumer lost it): nothing new should start."""
    mid: float | None = None
    """Last mid of the symbol from the feed (None: never seen)."""
    orders_in_window: int = 0
    """New orders approved in the last order_rate_window_ms."""
    daily_pnl: Decimal = Decimal(0)
    """Realised plus marked-to-mid PnL since 00:00 UTC, quote asset."""
    liquidation_distance_pct: float | None = None
    """Futures: how far the mark is from the venue's liquidation price (None: no such price)."""
    funding_rate: float | None = None
    """Futures: the venue's current funding rate per interval (positive: longs pay shorts)."""
    contract_usd: Decimal | None = None
    """Inverse (COIN-M) futures: the USD face value of one contract, in which an order's
    notional is counted (contracts x it); None: quantity x price."""
    contract_terms_unknown: bool = False
    """Inverse futures whose contract size execution has not published yet: no entry can be
    valued."""


class OrderRateWindow:
    """Approvals in a rolling window, for the order-rate check (timestamps injected)."""

    def __init__(self, window_ms: int) -> None:
        self.window_ns = window_ms * 1_000_000
        self._times: deque[int] = deque()

    def record(self, now_ns: int) -> None:
        self._times.append(now_ns)

    def count(self, now_ns: int) -> int:
        horizon = now_ns - self.window_ns
        while self._times and self._times[0] <= horizon:
            self._times.popleft()
        return len(self._times)


Check = Callable[[Intent, RiskView, RiskLimits], Denial | None]


def is_finite(value: Decimal | float | int) -> bool:
    """Whether a number can be judged by: not NaN, sNaN or +-Infinity (never raises)."""
    if isinstance(value, Decimal):
        return value.is_finite()
    return math.isfinite(value)


def _unusable_limit(check: str, name: str, value: Decimal | float | int) -> Denial | None:
    """A denial when a limit is not a finite, non-negative number (None: it is usable)."""
    if is_finite(value) and value >= 0:
        return None
    return Denial(check=check, reason=f"risk limit {name} is {value}, not a usable limit")


def signed_qty(intent: Intent) -> Decimal:
    return intent.qty if intent.side is Side.BUY else -intent.qty


def reduces_position(intent: Intent, position_qty: Decimal) -> bool:
    """True when the intent moves the position towards zero without crossing it (never for a
    quantity or position that is not a finite number: such an intent is judged as an entry)."""
    if not is_finite(position_qty) or not is_finite(intent.qty) or position_qty == 0:
        return False
    after = position_qty + signed_qty(intent)
    return abs(after) < abs(position_qty) and (after == 0 or (after > 0) == (position_qty > 0))


def check_trading_state(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
    if intent.action == "cancel":
        return None
    if view.trading_state is TradingState.HALTED:
        return Denial(check="trading_state", reason="trading is HALTED")
    if view.trading_state is TradingState.REDUCING and not reduces_position(
        intent, view.position_qty
    ):
        return Denial(
            check="trading_state",
            reason=(
                f"trading is REDUCING and the intent does not reduce position {view.position_qty}"
            ),
        )
    return None


def check_intent_age(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
    """An intent that waited too long (a backlog, a restart) was decided on a gone market."""
    if intent.action == "cancel" or intent.created_ts_ns <= 0 or view.now_ns <= 0:
        return None
    unusable = _unusable_limit("intent_age", "max_intent_age_ms", limits.max_intent_age_ms)
    if unusable is not None:
        return unusable
    age_ms = (view.now_ns - intent.created_ts_ns) / 1_000_000
    if age_ms > limits.max_intent_age_ms:
        return Denial(
            check="intent_age",
            reason=f"intent is {age_ms:.0f} ms old (limit {limits.max_intent_age_ms} ms)",
        )
    return None


def check_data_freshness(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
    """Stale market data or a degraded bus: no new entries (reducing stays possible)."""
    if (
        intent.action == "cancel"
        or intent.reduce_only
        or reduces_position(intent, view.position_qty)
    ):
        return None
    if view.bus_degraded:
        return Denial(check="stale_data", reason="the bus is degraded: no new entries")
    if view.data_age_ms is None:
        return Denial(check="stale_data", reason=f"no market data for {intent.symbol} yet")
    unusable = _unusable_limit("stale_data", "max_data_age_ms", limits.max_data_age_ms)
    if unusable is not None:
        return unusable
    if not is_finite(view.data_age_ms):
        return Denial(check="stale_data", reason=f"market data age is {view.data_age_ms}")
    if view.data_age_ms > limits.max_data_age_ms:
        return Denial(
            check="stale_data",
            reason=(
                f"market data is {view.data_age_ms:.0f} ms old (limit {limits.max_data_age_ms} ms)"
            ),
        )
    return None


def entry_block_reason(
    *,
    trading_state: TradingState,
    bus_degraded: bool,
    data_age_ms: dict[str, float | None],
    limits: RiskLimits,
) -> str | None:
    """Why a new entry would be denied now whatever its size (None: entries are allowed): the
    trading state, a degraded bus, or stale market data. What "time to halt entries" watches."""
    if trading_state is not TradingState.ACTIVE:
        return f"trading state {trading_state.value}"
    if bus_degraded:
        return "the bus is degraded"
    if _unusable_limit("stale_data", "max_data_age_ms", limits.max_data_age_ms) is not None:
        return f"risk limit max_data_age_ms is {limits.max_data_age_ms}"
    stale = sorted(
        symbol
        for symbol, age in data_age_ms.items()
        if age is None or not is_finite(age) or age > limits.max_data_age_ms
    )
    if stale:
        return f"market data stale: {', '.join(stale)}"
    return None


def order_notional(intent: Intent, reference_price: float) -> Decimal | None:
    """The order's value in quote asset, or None when there is no finite, positive price (or
    quantity) to value it with."""
    if not is_finite(intent.qty):
        return None
    if intent.order_type is not OrderType.MARKET and intent.limit_price is not None:
        if not is_finite(intent.limit_price):
            return None
        return intent.qty * intent.limit_price
    if is_finite(reference_price) and reference_price > 0:
        return intent.qty * Decimal(repr(reference_price))
    return None


def check_max_notional(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
    """A fat-finger guard for entries; a reduce-only order is bounded by the position, which
    max_position bounds, and a flatten must not be refused for being big."""
    if intent.action == "cancel" or (
        intent.reduce_only and reduces_position(intent, view.position_qty)
    ):
        return None
    unusable = _unusable_limit(
        "max_notional", "max_notional_per_order", limits.max_notional_per_order
    )
    if unusable is not None:
        return unusable
    if view.contract_terms_unknown:
        return Denial(
            check="max_notional",
            reason=f"the contract size of {intent.symbol} is not known yet (execution publishes"
            " it at connect)",
        )
    notional = (
        intent.qty * view.contract_usd
        if view.contract_usd is not None and is_finite(intent.qty)
        else order_notional(intent, view.reference_price)
    )
    if notional is None:
        return Denial(
            check="max_notional",
            reason=f"no finite price to value the order (reference {view.reference_price})",
        )
    if notional > limits.max_notional_per_order:
        return Denial(
            check="max_notional",
            reason=f"order notional {notional:.2f} exceeds {limits.max_notional_per_order}",
        )
    return None


def check_max_position(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
    if intent.action == "cancel" or reduces_position(intent, view.position_qty):
        return None
    unusable = _unusable_limit("max_position", "max_position_qty", limits.max_position_qty)
    if unusable is not None:
        return unusable
    parts = (view.position_qty, view.pending_buy_qty, view.pending_sell_qty, intent.qty)
    if not all(is_finite(part) for part in parts):
        return Denial(
            check="max_position",
            reason=(
                f"cannot add up the position: position {view.position_qty}, pending buy"
                f" {view.pending_buy_qty}, pending sell {view.pending_sell_qty}, qty {intent.qty}"
            ),
        )
    if intent.side is Side.BUY:
        worst = view.position_qty + view.pending_buy_qty + intent.qty
    else:
        worst = view.position_qty - view.pending_sell_qty - intent.qty
    if abs(worst) > limits.max_position_qty:
        return Denial(
            check="max_position",
            reason=f"position would reach {worst} (limit {limits.max_position_qty})",
        )
    return None


def _is_entry(intent: Intent, view: RiskView) -> bool:
    return (
        intent.action == "new"
        and not intent.reduce_only
        and not reduces_position(intent, view.position_qty)
    )


def check_order_rate(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
    """A runaway strategy floods the venue; reductions (a flatten) are never throttled here."""
    if not _is_entry(intent, view):
        return None
    unusable = _unusable_limit("order_rate", "max_orders_per_window", limits.max_orders_per_window)
    if unusable is not None:
        return unusable
    if view.orders_in_window >= limits.max_orders_per_window:
        return Denial(
            check="order_rate",
            reason=(
                f"{view.orders_in_window} orders in the last {limits.order_rate_window_ms} ms"
                f" (limit {limits.max_orders_per_window})"
            ),
        )
    return None


def check_price_band(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
    """Fat finger: a limit price far from the market is a typo, not a strategy."""
    if intent.action == "cancel" or intent.limit_price is None or view.mid is None:
        return None
    if not is_finite(view.mid) or view.mid < 0:
        return Denial(check="price_band", reason=f"mid {view.mid} is not a price to judge by")
    if view.mid == 0:
        return None  # no market yet: nothing to be far from
    unusable = _unusable_limit("price_band", "price_band_percent", limits.price_band_percent)
    if unusable is not None:
        return unusable
    if not is_finite(intent.limit_price):
        return Denial(check="price_band", reason=f"limit price {intent.limit_price} is not a price")
    mid = Decimal(repr(view.mid))
    deviation = abs(intent.limit_price - mid) / mid * 100
    if deviation > Decimal(repr(limits.price_band_percent)):
        return Denial(
            check="price_band",
            reason=(
                f"limit price {intent.limit_price} is {deviation:.2f}% from mid {view.mid}"
                f" (band {limits.price_band_percent}%)"
            ),
        )
    return None


def check_daily_loss(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
    if not _is_entry(intent, view):
        return None
    unusable = _unusable_limit("daily_loss", "daily_loss_limit", limits.daily_loss_limit)
    if unusable is not None:
        return unusable
    if not is_finite(view.daily_pnl):
        return Denial(check="daily_loss", reason=f"daily PnL is {view.daily_pnl}")
    if view.daily_pnl < -limits.daily_loss_limit:
        return Denial(
            check="daily_loss",
            reason=f"daily loss {-view.daily_pnl:.2f} exceeds {limits.daily_loss_limit}",
        )
    return None


def check_liquidation_distance(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
    """Futures: an entry that would add to a position already near its liquidation price is
    refused; reductions always pass (they move it away)."""
    limit = limits.min_liquidation_distance_pct
    if intent.action == "cancel" or limit <= 0 or reduces_position(intent, view.position_qty):
        return None
    if not math.isfinite(limit):
        return Denial(check="liquidation_distance", reason=f"risk limit is {limit}")
    distance = view.liquidation_distance_pct
    if distance is None:
        return None
    if not math.isfinite(distance) or distance < limit:
        return Denial(
            check="liquidation_distance",
            reason=f"the mark is {distance:.2f}% from the liquidation price, under {limit}%",
        )
    return None


def liquidation_breaker_trips(distance_pct: float | None, limits: RiskLimits) -> bool:
    """Whether a position this close to its liquidation price must be reduced now."""
    limit = limits.liquidation_breaker_pct
    if limit <= 0 or distance_pct is None:
        return False
    return not math.isfinite(distance_pct) or distance_pct < limit


def pays_funding(qty: Decimal, rate: float) -> bool:
    """Whether a position of signed `qty` pays at this funding rate (longs pay when it is
    positive, shorts when it is negative)."""
    return (qty > 0 and rate > 0) or (qty < 0 and rate < 0)


def _funding_over(rate: float | None, limit: float) -> bool:
    # 1e-9: a rate exactly at the limit (0.0007 x 100 is 0.06999... in binary) is "at" it
    return (
        limit > 0
        and rate is not None
        and (not math.isfinite(rate) or abs(rate) * 100 >= limit - 1e-9)
    )


def check_funding(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
    """Futures: while the funding rate is at or over max_adverse_funding_pct, no entry may open
    or add to a position on the side that pays it; reductions always pass."""
    limit = limits.max_adverse_funding_pct
    if intent.action == "cancel" or reduces_position(intent, view.position_qty):
        return None
    if not math.isfinite(limit):
        return Denial(check="funding", reason=f"risk limit is {limit}")
    rate = view.funding_rate
    if not _funding_over(rate, limit) or rate is None:
        return None
    if math.isfinite(rate) and not pays_funding(signed_qty(intent), rate):
        return None  # the entry receives the funding: the spike pays it
    return Denial(
        check="funding",
        reason=f"the funding rate is {rate * 100:.4f}% per interval, over {limit}%, against"
        f" a {intent.side.value} entry",
    )


def funding_guard_trips(position_qty: Decimal, rate: float | None, limits: RiskLimits) -> bool:
    """Whether a position paying this funding rate must be reduced now."""
    if not _funding_over(rate, limits.max_adverse_funding_pct) or rate is None:
        return False
    return position_qty != 0 and (not math.isfinite(rate) or pays_funding(position_qty, rate))


def check_quantity(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
    if intent.action == "cancel":
        return (
            None
            if intent.cancel_intent_id
            else Denial(check="quantity", reason="a cancel intent must name cancel_intent_id")
        )
    if not is_finite(intent.qty) or intent.qty <= 0:
        return Denial(check="quantity", reason=f"quantity must be positive, got {intent.qty}")
    if intent.limit_price is not None and not is_finite(intent.limit_price):
        return Denial(check="quantity", reason=f"limit_price is {intent.limit_price}")
    if intent.order_type is not OrderType.MARKET and (
        intent.limit_price is None or intent.limit_price <= 0
    ):
        return Denial(check="quantity", reason="a limit order needs a positive limit_price")
    return None


DEFAULT_CHECKS: tuple[Check, ...] = (
    check_quantity,
    check_trading_state,
    check_intent_age,
    check_data_freshness,
    check_price_band,
    check_max_notional,
    check_max_position,
    check_order_rate,
    check_daily_loss,
    check_liquidation_distance,
    check_funding,
)


def evaluate(
    intent: Intent,
    view: RiskView,
    limits: RiskLimits,
    checks: Iterable[Check] = DEFAULT_CHECKS,
) -> Denial | None:
    """First denial wins; None means the intent may become an order. A check whose arithmetic
    fails (a Decimal that slipped past the checks above) denies: it never raises to the caller,
    whose only other choice would be to drop the intent without an answer."""
    for check in checks:
        try:
            denial = check(intent, view, limits)
        except ArithmeticError as exc:  # decimal.InvalidOperation, Overflow, DivisionByZero
            name = getattr(check, "__name__", "check").removeprefix("check_")
            return Denial(check=name, reason=f"cannot judge: {type(exc).__name__}")
        if denial is not None:
            return denial
    return None
