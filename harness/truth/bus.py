"""An observer of the engine's bus: it tails the Redis streams the way a wiretap would, straight
from Redis (not through the stack's proxy, never in a consumer group: the engine cannot tell it
is there), and keeps what the judge needs.

    md.{venue}.{symbol}   every market-data message: when it reached the bus (the entry id,
                          Redis's clock) and the market time the replay stamped on it
    intents, orders.{venue}   every new intent (a strategy's, the intake's, risk's flattens):
                          the ledger of what was asked, to hold the venue's orders against
    risk.events, exec.{venue}   risk denials and IntentDone: what clients were told

It reads every stream from its start (a game day's stack is fresh), so that nothing the engine
published before the observer came up is missed. It decodes messages as plain JSON (it imports
none of the engine's types: a change of the message schema shows up as messages it cannot read,
counted in `unreadable`). Bounded: past `max_md` market observations the oldest go first and
`md_dropped` counts them.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness.truth.records import EngineAnswer, IntentRecord, MdObservation

HOST = "127.0.0.1"
READ_COUNT = 2000
"""Entries per stream per read: a read that returns fewer on every stream has caught up."""
RELOCATE_NS = 1_000_000_000
"""With a locator, how often the observer asks where Redis is now."""


def entry_ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


class BusObserver(threading.Thread):
    def __init__(
        self,
        *,
        port: int,
        venue: str,
        host: str = HOST,
        locate: Callable[[], tuple[str, int]] | None = None,
        symbols: list[str],
        max_md: int = 1_000_000,
        block_ms: int = 200,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        super().__init__(name="bus-observer", daemon=True)
        ipaddress.ip_address(host)  # an address, never a name: no lookup leaves the machine
        self.host, self.port = host, port
        self._locate = locate
        """Where Redis is now, (host, port): asked every RELOCATE_NS and after a failed read
        (a replaced pod moves, and the old one may answer a while longer)."""
        self._username, self._password = username, password
        self.venue = venue
        self.md_streams = {f"md.{venue}.{s.upper()}": s.upper() for s in symbols}
        self.block_ms = block_ms
        self.md: deque[MdObservation] = deque(maxlen=max_md)
        self.md_dropped = 0
        self.intents: dict[str, IntentRecord] = {}
        self.answers: list[EngineAnswer] = []
        self.unreadable = 0
        self.outages: list[tuple[int, int]] = []
        """(from ns, to ns): Redis could not be read (what was written meanwhile is read after)."""
        self.down_since: int | None = None
        """Redis cannot be read since then (None: it can)."""
        self._lock = threading.Lock()
        self._halt = threading.Event()
        # from each stream's start: the engine may trade before the observer is up, and an order
        # of an intent it did not see would look like an order nobody asked for
        self._positions: dict[str, str] = dict.fromkeys(
            [*self.md_streams, "intents", f"orders.{venue}", "risk.events", f"exec.{venue}"],
            "0-0",
        )
        self._started = threading.Event()
        self.caught_up_ns = 0
        """Every entry written before this time has been read (a read that began then came
        back short of its count on every stream)."""

    def start(self) -> None:
        super().start()
        self._started.wait(timeout=5)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    # --- snapshots for the judge -------------------------------------------------------------

    def md_between(self, start_ms: int, end_ms: int) -> list[MdObservation]:
        with self._lock:
            return [o for o in self.md if start_ms <= o.entry_ms <= end_ms]

    def intents_between(self, start_ns: int, end_ns: int) -> list[IntentRecord]:
        with self._lock:
            return [i for i in self.intents.values() if start_ns <= i.submitted_ns <= end_ns]

    def all_intents(self) -> list[IntentRecord]:
        with self._lock:
            return list(self.intents.values())

    def answers_since(self, start_ns: int) -> list[EngineAnswer]:
        with self._lock:
            return [a for a in self.answers if a.ts_ns >= start_ns]

    # --- the tap -----------------------------------------------------------------------------

    def _client(self) -> Any:
        # Any: redis-py's stubs type replies as unions of every reply shape
        return redis.Redis(
            host=self.host,
            port=self.port,
            socket_timeout=2,
            socket_connect_timeout=1,
            # the loop below retries, relocating in between: redis-py's own retries would hold
            # a read to a vanished server for half a minute
            retry=Retry(NoBackoff(), 0),
            username=self._username,
            password=self._password,
        )

    def run(self) -> None:
        client = self._client()
        located_ns = time.time_ns()
        try:
            while not self._halt.is_set():
                if self._locate is not None and time.time_ns() - located_ns >= RELOCATE_NS:
                    # a replaced server may leave the old one answering for a while: follow
                    # the current one, not the first error
                    located_ns = time.time_ns()
                    client = self._follow(client)
                try:
                    self._started.set()
                    asked_ns = time.time_ns()
                    replies = client.xread(self._positions, count=READ_COUNT, block=self.block_ms)
                except redis.RedisError:
                    self._started.set()
                    if self.down_since is None:
                        self.down_since = time.time_ns()
                    self._halt.wait(0.2)
                    if self._locate is not None:
                        located_ns = time.time_ns()
                        client = self._follow(client)
                    continue
                if self.down_since is not None:
                    self.outages.append((self.down_since, time.time_ns()))
                    self.down_since = None
                for stream, entries in replies or []:
                    name = stream.decode() if isinstance(stream, bytes) else stream
                    for entry_id, fields in entries:
                        self._positions[name] = entry_id.decode()
                        self._take(name, entry_ms(entry_id), fields.get(b"m", b""))
                if all(len(entries) < READ_COUNT for _, entries in replies or []):
                    # with a locator, only as far as the address was last confirmed
                    self.caught_up_ns = asked_ns if self._locate is None else located_ns
        finally:
            client.close()

    def _follow(self, client: Any) -> Any:
        """The client of the address the locator gives now (the same one if it did not move)."""
        assert self._locate is not None
        host, port = self._locate()
        if (host, port) == (self.host, self.port):
            return client
        ipaddress.ip_address(host)
        client.close()
        self.host, self.port = host, port
        return self._client()

    def _take(self, stream: str, at_ms: int, raw: bytes) -> None:
        try:
            message = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            self.unreadable += 1
            return
        if not isinstance(message, dict):
            self.unreadable += 1
            return
        kind = message.get("type")
        with self._lock:
            if stream in self.md_streams:
                self._market(stream, at_ms, kind, message)
            elif kind == "intent":
                self._intent(message, at_ms)
            elif kind == "order_request" and isinstance(message.get("intent"), dict):
                self._intent(message["intent"], at_ms)
            elif kind == "risk_denial":
                self._answer(message, "risk_denial", "denied", at_ms)
            elif kind == "intent_done":
                self._answer(message, "intent_done", str(message.get("outcome", "")), at_ms)

    def _market(self, stream: str, at_ms: int, kind: Any, message: dict[str, Any]) -> None:
        if kind not in ("trade", "quote", "book"):
            return
        event = message.get("exchange_ts_ms")
        if len(self.md) == self.md.maxlen:
            self.md_dropped += 1
        self.md.append(
            MdObservation(
                symbol=self.md_streams[stream],
                kind=str(kind),
                entry_ms=at_ms,
                event_ms=event if isinstance(event, int) and event > 0 else None,
                feed=str(message.get("feed", "")),
                correlation_id=str(message.get("correlation_id", "")),
            )
        )

    def _intent(self, intent: dict[str, Any], at_ms: int) -> None:
        intent_id = intent.get("intent_id")
        if intent.get("action", "new") != "new" or not isinstance(intent_id, str):
            return
        if intent_id in self.intents:
            return  # the first sighting is when it was asked
        try:
            qty = Decimal(str(intent.get("qty", "0")))
        except InvalidOperation:
            self.unreadable += 1
            return
        self.intents[intent_id] = IntentRecord(
            intent_id=intent_id,
            source="bus",
            symbol=str(intent.get("symbol", "")),
            side=str(intent.get("side", "")),
            qty=qty,
            submitted_ns=at_ms * 1_000_000,
            algo=str(intent.get("algo", "") or ""),
            order_type=str(intent.get("order_type", "MARKET")),
            correlation_id=str(intent.get("correlation_id", "") or ""),
        )

    def _answer(self, message: dict[str, Any], kind: str, outcome: str, at_ms: int) -> None:
        intent_id = message.get("intent_id")
        if isinstance(intent_id, str):
            self.answers.append(
                EngineAnswer(intent_id=intent_id, kind=kind, outcome=outcome, ts_ns=at_ms * 10**6)
            )
