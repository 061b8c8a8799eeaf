"""The engine's HTTP servers, probed as an attacker would, on a real strategy service (real
Redis, the replay as its venue): the ops port with its order intake. Bad input gets a JSON 4xx,
never a 500; a flood of refusals writes a line per interval, not one per request; slow clients
and surplus connections are cut; memory goes back when they leave."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.ops.server import HTTP_LIMITS
from tests.adversarial.probes import (
    body_of,
    connect,
    exchange,
    json_error,
    json_values,
    read_json_lines,
    read_response,
    read_until_closed,
    request,
    rss_mib,
    settled_rss_mib,
    status_of,
)
from tests.helpers import redis, replay_process, wait_until
from tests.integration.trading import OPS_TOKEN, engine_argv, engine_config, running, wait_started

pytestmark = pytest.mark.adversarial

INTAKE_TOKEN = "intake-token-for-adversarial-tests-0123456789"
QUIET = """
[[strategies]]
kind = "momentum"
name = "momentum"
params = { threshold_bps = 1000000000.0 }
"""


@dataclass
class Strategy:
    port: int
    pid: int
    log: Path


@pytest.fixture(scope="module")
def strategy(tmp_path_factory: pytest.TempPathFactory, synth_recording: Path) -> Iterator[Strategy]:
    tmp = tmp_path_factory.mktemp("engine-http")
    with ExitStack() as stack:
        redis_port = stack.enter_context(redis(tmp))
        sim = stack.enter_context(replay_process(tmp, synth_recording))
        config, ports = engine_config(tmp, sim, redis_port, extra=QUIET)
        log = tmp / "strategy.log"
        proc = stack.enter_context(
            running(engine_argv(config, "strategy"), log, {"STORMPROOF_INTAKE_TOKEN": INTAKE_TOKEN})
        )
        wait_started(ports["strategy"], proc, log)
        yield Strategy(ports["strategy"], proc.pid, log)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _ask(port: int, raw: bytes) -> tuple[int, bytes]:
    response, _ = exchange(port, raw)
    return status_of(response), body_of(response)


@pytest.mark.parametrize(
    "raw_header",
    [
        "Authorization: Bearer caf\u00e9".encode(),
        b"Authorization: Bearer \xff\xfe",  # not UTF-8: once a 500 on both
        b"Authorization: \x80",
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/ops/halt"), ("POST", "/intents"), ("GET", "/intents/a-1")]
)
def test_a_non_ascii_authorization_header_is_a_401_not_a_500(
    strategy: Strategy, raw_header: bytes, method: str, path: str
) -> None:
    body = b'{"reason": "x"}' if method == "POST" else b""
    status, answer = _ask(
        strategy.port,
        request(method, path, body=body, raw_headers=raw_header + b"\r\n", keep_alive=False),
    )
    assert status == 401
    assert "token" in json_error(answer)


def test_a_flood_of_refused_requests_writes_a_line_per_interval(strategy: Strategy) -> None:
    """2,000 unauthorized or malformed requests once wrote 2,000 log lines."""

    def lines() -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in read_json_lines(strategy.log):
            event = str(entry.get("event", ""))
            for kind in ("ops_unauthorized", "intake_unauthorized", "Error handling request"):
                if event.startswith(kind):
                    counts[kind] = counts.get(kind, 0) + 1
        return counts

    before = lines()
    with connect(strategy.port) as sock:
        for n in range(700):
            sock.sendall(request("POST", "/ops/halt", headers=_auth(f"wrong-{n}")))
            assert read_response(sock)[0] == 401
            sock.sendall(request("POST", "/intents", body=b"{}", headers=_auth(f"wrong-{n}")))
            assert read_response(sock)[0] == 401
    for _ in range(600):  # requests aiohttp cannot parse: each closes its connection
        response, _ = exchange(strategy.port, b"GET /status HTTP/1.1\r\nBad\x01Header: x\r\n\r\n")
        assert status_of(response) == 400
        json_error(body_of(response))
    kinds = ("ops_unauthorized", "intake_unauthorized", "Error handling request")
    # each kind is logged (by the flood, or within the interval before it)...
    after = wait_until(
        lambda: (c := lines()) and all(c.get(k, 0) >= 1 for k in kinds) and c,
        timeout_s=5,
        what="a log line of each kind",
    )
    assert isinstance(after, dict)
    for kind in kinds:  # ...but not once per request
        written = after.get(kind, 0) - before.get(kind, 0)
        assert written <= 3, f"{written} lines of {kind} for a flood of hundreds"


def test_slow_clients_are_cut_off_at_the_default_deadlines(strategy: Strategy) -> None:
    """Slowloris on the ops port: a head that trickles forever is closed at the idle deadline
    (20 s), a body that trickles gets a 408 at the body deadline (10 s). Both run at once."""
    results: dict[str, Any] = {}

    def trickle_head() -> None:
        started = time.monotonic()
        with connect(strategy.port, timeout_s=40) as sock:
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
            while time.monotonic() - started < 35:
                try:
                    sock.sendall(b"X-A: b\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break
                time.sleep(1)
            _, closed = read_until_closed(sock, 2)
        results["head"] = (closed, time.monotonic() - started)

    def trickle_body() -> None:
        started = time.monotonic()
        with connect(strategy.port, timeout_s=40) as sock:
            sock.sendall(request("POST", "/intents", body=b"{" + b" " * 100 + b"}")[:-80])
            for _ in range(30):
                time.sleep(1)
                try:
                    sock.sendall(b" ")
                except (BrokenPipeError, ConnectionResetError):
                    break
                sock.settimeout(0.01)
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    continue
                results["body"] = (status_of(data), time.monotonic() - started)
                return

    threads = [threading.Thread(target=trickle_head), threading.Thread(target=trickle_body)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    closed, head_s = results["head"]
    assert closed and head_s < HTTP_LIMITS.idle_timeout_s + 5, results
    status, body_s = results["body"]
    assert status == 408 and body_s < HTTP_LIMITS.body_timeout_s + 5, results


def test_connections_over_the_cap_are_refused_and_memory_goes_back(strategy: Strategy) -> None:
    before = rss_mib(strategy.pid)
    cap = HTTP_LIMITS.max_connections
    socks: list[socket.socket] = []
    refused = 0
    try:
        for _ in range(cap + 60):
            sock = connect(strategy.port)
            socks.append(sock)
            with suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 6000)
        for sock in socks:
            sock.settimeout(0.02)
            try:
                data = sock.recv(4096)
            except (TimeoutError, ConnectionResetError):
                continue
            if data.startswith(b"HTTP/1.1 503"):
                refused += 1
        held = rss_mib(strategy.pid)
    finally:
        for sock in socks:
            sock.close()
    assert refused >= 60, f"{refused} refused over a cap of {cap}"
    assert held - before < 40, f"RSS grew {held - before:.1f} MiB"
    after = settled_rss_mib(strategy.pid, above_mib=before + 15)
    assert after - before < 15
    wait_until(  # the server sees the closes as its loop gets to them
        lambda: _ask(strategy.port, request("GET", "/status", keep_alive=False))[0] == 200,
        timeout_s=10,
        what="the ops server to serve again once the connections left",
    )


# --- grammar fuzz -------------------------------------------------------------------------------

_JSON = json_values(
    ["BTCUSDT", "BUY", "SELL", "MARKET", "LIMIT", "0.001", "9" * 5000, "NaN"], key_size=6
)
_INTENT_FIELDS = st.sampled_from(
    [
        "intent_id",
        "symbol",
        "side",
        "qty",
        "order_type",
        "limit_price",
        "time_in_force",
        "reduce_only",
        "algo",
        "algo_params",
        "source",
        "reason",
    ]
)


@st.composite
def _engine_requests(draw: st.DrawFn) -> bytes:
    target = draw(st.sampled_from(["intake", "intake", "ops", "get"]))
    token = draw(st.sampled_from([INTAKE_TOKEN, OPS_TOKEN, "", "x"]))
    headers = _auth(token) if token else {"Content-Type": "application/json"}
    if target == "get":
        path = draw(
            st.sampled_from(["/intents/", "/status", "/readyz", "/ops/"]).flatmap(
                lambda p: st.text(max_size=8).map(lambda t: p + t)
            )
        )
        from urllib.parse import quote

        return request("GET", quote(path), headers=headers)
    body: Any = draw(st.dictionaries(_INTENT_FIELDS, _JSON, max_size=6) | _JSON)
    kind = draw(st.sampled_from(["json", "json", "bytes"]))
    data = json.dumps(body).encode() if kind == "json" else draw(st.binary(min_size=1, max_size=40))
    if target == "ops":
        command = draw(st.sampled_from(["pause", "resume", "flatten", "halt", "nope"]))
        return request("POST", f"/ops/{command}", body=data, headers=headers)
    return request("POST", "/intents", body=data, headers=headers)


@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=_engine_requests())
def test_any_intake_or_ops_request_gets_a_json_answer_never_a_5xx(
    strategy: Strategy, raw: bytes
) -> None:
    with connect(strategy.port) as sock:
        sock.sendall(raw)
        status, headers, body = read_response(sock)
        readiness = raw.startswith(b"GET /readyz") and status == 503  # no feed in this test
        assert status < 500 or readiness, (raw[:300], status, body[:300])
        if status >= 400:
            json_error(body)
        if headers.get("connection", "").lower() != "close":
            sock.sendall(request("GET", "/startupz"))
            assert read_response(sock)[0] == 200, "the server still serves a well-formed request"
