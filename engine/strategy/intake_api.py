"""The engine's order intake: `POST /intents` and `GET /intents/{intent_id}` on the strategy
service's ops server (in `run all` too, since that process serves the strategy's ops port).

An accepted request becomes the same `Intent` a strategy emits, published on the same `intents`
stream, so risk and execution treat it like any other (its source is "intake:<label>").

    POST /intents        bearer token of intake.token_env; JSON body (engine.core.intent_request)
      202 {"intent_id", "status": "accepted", "accepted_ts_ns"}   published on `intents`
      200 {"intent_id", "status": "duplicate", "accepted_ts_ns"}  same id, same payload: nothing
                                                                    published again
      409 same id, another payload      400 not a JSON object     422 a field is wrong
      401 missing or wrong token        403 no token configured   413 body over max_body_bytes
      503 + Retry-After: not running, too many requests in flight, the bus unavailable (the id
          is released: retry with the same id), or the same id being accepted right now
    GET  /intents/{intent_id}   what the intake knows about an id; 404 when nothing

Idempotency is a claim on the bus (`Bus.claim_once`: Redis `SET NX PX`, shared by every
instance and surviving restarts) under `intake.intent.<intent_id>`. The claim is taken as
"pending" with a short TTL, the intent is published, and the claim becomes "accepted" for
`dedupe_ttl_s`. If the publish fails the claim is released, so the caller's retry is accepted.
If the process dies between the two, the pending claim expires after `pending_ttl_s`; should the
intent have reached the bus after all, a retry publishes it a second time, and downstream
idempotency absorbs it: risk remembers decided intent ids, and execution derives the
clientOrderId from the intent id, so the venue never gets a second order.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from engine.bus.base import INTENTS, Bus
from engine.config import IntakeConfig, Secret
from engine.core.clock import Clock
from engine.core.errors import BusUnavailableError
from engine.core.intent_request import (
    INTENT_ID_PATTERN,
    IntakeRecord,
    IntakeRejection,
    decode_intent_request,
    payload_fingerprint,
)
from engine.core.messages import Intent
from engine.runtime.metrics import EngineMetrics
from plumbing.http_limits import bearer_matches
from plumbing.ratelimited_log import RateLimitedLog

OUTCOMES = ("accepted", "duplicate", "conflict", "invalid", "unauthorized", "unavailable")
KEY_PREFIX = "intake.intent."
RETRY_AFTER_S = 1


def intake_key(intent_id: str) -> str:
    """The bus key of an intent id's idempotency record."""
    return f"{KEY_PREFIX}{intent_id}"


def _json(
    data: dict[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(data, sort_keys=True),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class IntentIntake:
    def __init__(
        self,
        *,
        config: IntakeConfig,
        token: Secret,
        bus: Bus,
        clock: Clock,
        metrics: EngineMetrics,
        venue: str,
        symbols: Sequence[str],
        reference_prices: Mapping[str, float],
        not_accepting: Callable[[], str],
        log: Any,
    ) -> None:
        """`reference_prices` is the live map of last mids the intents are stamped with;
        `not_accepting()` returns why the service cannot take intents now ("" when it can)."""
        self.config = config
        self._token = token
        self.bus = bus
        self.clock = clock
        self.metrics = metrics
        self.venue = venue
        self.symbols = frozenset(symbols)
        self.reference_prices = reference_prices
        self.not_accepting = not_accepting
        self.log = log
        self._noisy = RateLimitedLog(log, clock, interval_ms=10_000)
        self.in_flight = 0
        self.counts = dict.fromkeys(OUTCOMES, 0)
        for outcome in OUTCOMES:  # every series exists from the start, at 0
            metrics.intake_requests.labels(outcome=outcome)

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.post("/intents", self.post_intent),
            web.get("/intents/{intent_id}", self.get_intent),
        ]

    def status(self) -> dict[str, Any]:
        """For /status: counts and settings, never the token."""
        return {
            "enabled": True,
            "token_configured": bool(self._token),
            "in_flight": self.in_flight,
            "requests": dict(self.counts),
            "reference_prices": dict(self.reference_prices),
        }

    # --- answers ------------------------------------------------------------------------------

    def _answer(
        self,
        outcome: str,
        status: int,
        body: dict[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        self.counts[outcome] += 1
        self.metrics.intake_requests.labels(outcome=outcome).inc()
        return _json(body, status, headers)

    def _unavailable(self, error: str) -> web.Response:
        return self._answer(
            "unavailable", 503, {"error": error}, {"Retry-After": str(RETRY_AFTER_S)}
        )

    def _authorize(self, request: web.Request) -> tuple[int, str] | None:
        """None when the request carries the intake token; else (status, error)."""
        if not self._token:
            return 403, (f"intake disabled: no token configured (set ${self.config.token_env})")
        # any header value is safe to check (bytes that are not UTF-8 included), and the time
        # the comparison takes says nothing about the token
        if not bearer_matches(request.headers.get("Authorization"), self._token.reveal()):
            self._noisy.warning("intake_unauthorized", "intake_unauthorized", remote=request.remote)
            return 401, "missing or invalid bearer token"
        return None

    def _refuse_auth(self, refusal: tuple[int, str], *, count: bool) -> web.Response:
        status, error = refusal
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if count:
            return self._answer("unauthorized", status, {"error": error}, headers)
        return _json({"error": error}, status, headers)

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The body, or None when it is larger than max_body_bytes. The ops server's bounding
        middleware has read it already, within its deadline and its own (larger) size cap
        (engine.ops.server.HTTP_LIMITS); reading it here again costs nothing."""
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return None
        return None if len(body) > limit else body

    # --- POST /intents ------------------------------------------------------------------------

    async def post_intent(self, request: web.Request) -> web.Response:
        refusal = self._authorize(request)
        if refusal is not None:
            return self._refuse_auth(refusal, count=True)
        why = self.not_accepting()
        if why:
            return self._unavailable(f"intake unavailable: {why}")
        raw = await self._read_body(request)
        if raw is None:
            return self._answer(
                "invalid",
                413,
                {"error": f"body larger than {self.config.max_body_bytes} bytes"},
            )
        result = decode_intent_request(
            raw,
            venue=self.venue,
            symbols=self.symbols,
            now_ns=self.clock.time_ns(),
            reference_prices=self.reference_prices,
        )
        if isinstance(result, IntakeRejection):
            return self._answer(
                "invalid", result.status, {"error": result.message, "field": result.field}
            )
        if self.in_flight >= self.config.max_in_flight:
            return self._unavailable(
                f"intake busy: {self.in_flight} requests in flight"
                f" (intake.max_in_flight = {self.config.max_in_flight})"
            )
        self.in_flight += 1
        try:
            return await self._accept(result)
        finally:
            self.in_flight -= 1

    async def _accept(self, intent: Intent) -> web.Response:
        fingerprint = payload_fingerprint(intent)
        key = intake_key(intent.intent_id)
        pending = IntakeRecord(
            intent_id=intent.intent_id,
            payload_sha256=fingerprint,
            accepted_ts_ns=intent.created_ts_ns,
            state="pending",
        ).encode()
        try:
            existing = await self.bus.claim_once(
                key, pending, ttl_ms=self.config.pending_ttl_s * 1000
            )
        except BusUnavailableError:
            return self._unavailable("the bus is unavailable: nothing was accepted; retry")
        if existing is not None:
            return self._known(intent.intent_id, fingerprint, existing)
        try:
            await self.bus.publish(INTENTS, intent)
        except Exception as exc:
            # nothing trustworthy was accepted: free the id so that the caller's retry goes
            # through (were the entry on the stream after all, downstream dedupe absorbs it)
            released = False
            with contextlib.suppress(BusUnavailableError):
                released = await self.bus.swap_value(key, pending, None)
            self.log.warning(
                "intake_publish_failed",
                intent_id=intent.intent_id,
                error=str(exc)[:200],
                claim_released=released,
            )
            return self._unavailable(
                "the bus is unavailable: the intent was not accepted; retry with the same intent_id"
            )
        accepted = IntakeRecord(
            intent_id=intent.intent_id,
            payload_sha256=fingerprint,
            accepted_ts_ns=intent.created_ts_ns,
            state="accepted",
        ).encode()
        try:
            recorded = await self.bus.swap_value(
                key, pending, accepted, ttl_ms=self.config.dedupe_ttl_s * 1000
            )
        except BusUnavailableError:
            recorded = False
        if not recorded:
            # the intent is on the bus; only the long memory of its id is missing
            self.log.warning(
                "intake_record_not_updated",
                intent_id=intent.intent_id,
                remembered_for_s=self.config.pending_ttl_s,
            )
        self.log.info(
            "intake_intent_accepted",
            correlation_id=intent.correlation_id,
            intent_id=intent.intent_id,
            source=intent.source,
            symbol=intent.symbol,
            side=intent.side,
            qty=str(intent.qty),
            order_type=intent.order_type,
            limit_price=None if intent.limit_price is None else str(intent.limit_price),
            time_in_force=intent.time_in_force,
            reduce_only=intent.reduce_only,
            algo=intent.algo,
            reference_price=intent.reference_price,
            payload_sha256=fingerprint,
        )
        return self._answer(
            "accepted",
            202,
            {
                "intent_id": intent.intent_id,
                "status": "accepted",
                "accepted_ts_ns": intent.created_ts_ns,
            },
        )

    def _known(self, intent_id: str, fingerprint: str, existing: bytes) -> web.Response:
        record = IntakeRecord.decode(existing)
        if record is None or record.payload_sha256 != fingerprint:
            return self._answer(
                "conflict",
                409,
                {
                    "error": (
                        f"intent_id {intent_id!r} was already used with a different payload;"
                        " use a new intent_id for a new intent"
                    ),
                    "intent_id": intent_id,
                },
            )
        if record.state == "pending":
            return self._unavailable(
                f"intent {intent_id!r} is being accepted by another request; retry to learn"
                " the outcome"
            )
        return self._answer(
            "duplicate",
            200,
            {
                "intent_id": intent_id,
                "status": "duplicate",
                "accepted_ts_ns": record.accepted_ts_ns,
            },
        )

    # --- GET /intents/{intent_id} -------------------------------------------------------------

    async def get_intent(self, request: web.Request) -> web.Response:
        refusal = self._authorize(request)
        if refusal is not None:
            return self._refuse_auth(refusal, count=False)
        intent_id = request.match_info["intent_id"]
        if not INTENT_ID_PATTERN.fullmatch(intent_id):
            return _json(
                {
                    "error": "intent_id: must be 1 to 64 letters, digits, '-' or '_'",
                    "field": "intent_id",
                },
                422,
            )
        try:
            raw = await self.bus.get_value(intake_key(intent_id))
        except BusUnavailableError:
            return _json(
                {"error": "the bus is unavailable; retry"},
                503,
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        record = None if raw is None else IntakeRecord.decode(raw)
        if record is None:
            return _json(
                {"error": f"intent {intent_id!r} is unknown to the intake", "intent_id": intent_id},
                404,
            )
        return _json(
            {
                "intent_id": record.intent_id,
                "status": record.state,
                "accepted_ts_ns": record.accepted_ts_ns,
                "payload_sha256": record.payload_sha256,
            },
            200,
        )
