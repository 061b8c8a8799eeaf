"""The user data stream: executionReport and outboundAccountPosition events, in Binance's
formats, fanned out to every subscriber of an account.

Subscribers come through either of Binance's mechanisms: the WebSocket API
(`userDataStream.subscribe.signature`, what ccxt.pro uses for spot) or a listen key
(`POST /api/v3/userDataStream`, then `/ws/<listenKey>`). The hub also carries the user-stream
venue faults: events delayed by `delay_ms`, or subscribers dropped.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from replay.exchange.formats import fmt
from replay.exchange.matching import MatchingEngine, SimFill, SimOrder

LISTEN_KEY_TTL_S = 3600.0

Deliver = Callable[[dict[str, Any]], None]


def execution_report(
    order: SimOrder, execution_type: str, fill: SimFill | None, now_ms: int
) -> dict[str, Any]:
    working = order.working_time_ms >= 0
    return {
        "e": "executionReport",
        "E": now_ms,
        "s": order.symbol,
        "c": order.client_order_id,
        "S": order.side,
        "o": order.type,
        "f": order.time_in_force or "GTC",
        "q": fmt(order.orig_qty),
        "p": fmt(order.price),
        "P": "0.00000000",
        "F": "0.00000000",
        "g": -1,
        "C": "",
        "x": execution_type,
        "X": order.status.value,
        "r": "NONE",
        "i": order.order_id,
        "l": fmt(fill.qty) if fill else "0.00000000",
        "z": fmt(order.executed_qty),
        "L": fmt(fill.price) if fill else "0.00000000",
        "n": fmt(fill.commission) if fill else "0",
        "N": fill.commission_asset if fill else None,
        "T": fill.time_ms if fill else order.update_ms,
        "t": fill.trade_id if fill else -1,
        "I": order.order_id * 2 + (fill.trade_id if fill else 0),
        "w": order.is_open and working,
        "m": fill.is_maker if fill else False,
        "M": False,
        "O": order.time_ms,
        "Z": fmt(order.cumm_quote),
        "Y": fmt(fill.quote_qty) if fill else "0.00000000",
        "Q": fmt(order.orig_quote_qty),
        "W": order.working_time_ms if working else order.time_ms,
        "V": "EXPIRE_MAKER",
    }


def account_position(balances: dict[str, tuple[str, str]], now_ms: int) -> dict[str, Any]:
    return {
        "e": "outboundAccountPosition",
        "E": now_ms,
        "u": now_ms,
        "B": [{"a": asset, "f": free, "l": locked} for asset, (free, locked) in balances.items()],
    }


@dataclass
class _Subscriber:
    api_key: str
    deliver: Deliver
    dropped: bool = False


@dataclass
class ListenKey:
    key: str
    api_key: str
    expires_at: float


@dataclass
class UserDataHub:
    matching: MatchingEngine
    delay_ms: float = 0.0
    """A user-stream delay fault: events reach subscribers this much later."""
    paused: bool = False
    """A user-stream drop fault: events are not delivered while set."""
    _subscribers: dict[int, _Subscriber] = field(default_factory=dict)
    _next_id: int = 1
    listen_keys: dict[str, ListenKey] = field(default_factory=dict)
    delayed: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    published: int = 0

    def __post_init__(self) -> None:
        self.matching.listeners.append(self._on_order_event)

    def subscribe(self, api_key: str, deliver: Deliver) -> int:
        subscription_id = self._next_id
        self._next_id += 1
        self._subscribers[subscription_id] = _Subscriber(api_key, deliver)
        return subscription_id

    def unsubscribe(self, subscription_id: int) -> bool:
        return self._subscribers.pop(subscription_id, None) is not None

    def subscriber_ids(self) -> list[int]:
        return list(self._subscribers)

    # --- listen keys --------------------------------------------------------------------------

    def new_listen_key(self, api_key: str, now: float) -> str:
        for listen in self.listen_keys.values():  # Binance returns the live key of the account
            if listen.api_key == api_key and listen.expires_at > now:
                listen.expires_at = now + LISTEN_KEY_TTL_S
                return listen.key
        key = secrets.token_hex(32)[:60]
        self.listen_keys[key] = ListenKey(key, api_key, now + LISTEN_KEY_TTL_S)
        return key

    def keepalive(self, key: str, api_key: str, now: float) -> bool:
        listen = self.listen_keys.get(key)
        if listen is None or listen.api_key != api_key or listen.expires_at <= now:
            return False
        listen.expires_at = now + LISTEN_KEY_TTL_S
        return True

    def close_listen_key(self, key: str, api_key: str) -> bool:
        listen = self.listen_keys.get(key)
        if listen is None or listen.api_key != api_key:
            return False
        del self.listen_keys[key]
        return True

    def live_listen_key(self, key: str, now: float) -> ListenKey | None:
        listen = self.listen_keys.get(key)
        return listen if listen is not None and listen.expires_at > now else None

    # --- events -------------------------------------------------------------------------------

    def _on_order_event(self, order: SimOrder, execution_type: str, fill: SimFill | None) -> None:
        subscribers = self._subscribers
        if self.paused or not subscribers:
            return
        if not any(s.api_key == order.api_key for s in subscribers.values()):
            return  # nobody listens: building the events would be wasted work
        now_ms = time.time_ns() // 1_000_000
        report = execution_report(order, execution_type, fill, now_ms)
        rules = self.matching.rules[order.symbol]
        account = self.matching.accounts[order.api_key]
        balances = {
            asset: (fmt(account.balance(asset).free), fmt(account.balance(asset).locked))
            for asset in (rules.base, rules.quote)
        }
        self._publish(order.api_key, report)
        self._publish(order.api_key, account_position(balances, now_ms))

    def _publish(self, api_key: str, event: dict[str, Any]) -> None:
        if self.paused:
            return
        for subscription_id, subscriber in list(self._subscribers.items()):
            if subscriber.api_key != api_key:
                continue
            if self.delay_ms > 0:
                release = time.monotonic() + self.delay_ms / 1000
                self.delayed.append((release, subscription_id, event))
            else:
                subscriber.deliver(event)
                self.published += 1

    def release_delayed(self) -> None:
        """Deliver delayed events whose time has come (called by the server's tick)."""
        if not self.delayed:
            return
        now = time.monotonic()
        due = [item for item in self.delayed if item[0] <= now]
        self.delayed = [item for item in self.delayed if item[0] > now]
        for _, subscription_id, event in due:
            subscriber = self._subscribers.get(subscription_id)
            if subscriber is not None:
                subscriber.deliver(event)
                self.published += 1
