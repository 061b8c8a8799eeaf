"""The replay's control API (aiohttp, bearer token), probed as an attacker would: JSON errors,
never a 500; deadlines for slow clients; a seek past the end that ends cleanly; and the replay
CLI's answer to a file that is not a recording."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adversarial.probes import (
    body_of,
    bounded_venue,
    connect,
    exchange,
    json_error,
    json_values,
    read_response,
    read_until_closed,
    request,
    status_of,
)
from tests.helpers import SIM_TOKEN, ReplayProcess, control, wait_until

pytestmark = pytest.mark.adversarial
AUTH = {"Authorization": f"Bearer {SIM_TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def venue(
    tmp_path_factory: pytest.TempPathFactory, synth_recording: Path
) -> Iterator[ReplayProcess]:
    with bounded_venue(tmp_path_factory.mktemp("control"), synth_recording) as sim:
        yield sim


@pytest.mark.parametrize(
    "raw_header",
    [
        "Authorization: Bearer caf\u00e9".encode(),  # UTF-8 bytes
        b"Authorization: Bearer \xff\xfe\xfd",  # not UTF-8 at all: once a 500
        b"Authorization: \xe9",
    ],
)
def test_a_non_ascii_authorization_header_is_a_401_not_a_500(
    venue: ReplayProcess, raw_header: bytes
) -> None:
    response, _ = exchange(
        venue.control_port,
        request("GET", "/status", raw_headers=raw_header + b"\r\n", keep_alive=False),
    )
    assert status_of(response) == 401
    assert "bearer token" in json_error(body_of(response))


def test_aiohttps_own_errors_are_json(venue: ReplayProcess) -> None:
    for method, path, status in [("GET", "/nope", 404), ("PUT", "/replay/pause", 405)]:
        response, _ = exchange(
            venue.control_port, request(method, path, headers=AUTH, keep_alive=False)
        )
        assert status_of(response) == status
        json_error(body_of(response))
    big = b"{" + b" " * 70_000 + b"}"  # the control API takes bodies up to 64 KiB
    response, _ = exchange(
        venue.control_port,
        request("POST", "/replay/speed", body=big, headers=AUTH, keep_alive=False),
    )
    assert status_of(response) == 413
    json_error(body_of(response))


@pytest.mark.parametrize(
    "raw_headers",
    [
        b"Content-Length: 12\r\nContent-Length: 13\r\n",
        b"Content-Length: 12\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 12\r\n X-Folded: continuation\r\n",
        b"Content-Length: " + b"9" * 5000 + b"\r\n",
        b"Content-Length: 12\r\nX-Long: " + b"a" * 9000 + b"\r\n",
    ],
)
def test_ambiguous_or_oversized_framing_is_a_json_400_and_the_connection_closed(
    venue: ReplayProcess, raw_headers: bytes
) -> None:
    head = f"POST /replay/speed HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SIM_TOKEN}\r\n"
    raw = head.encode() + raw_headers + b'\r\n{"speed": 2}'
    raw += request("GET", "/status", headers=AUTH)  # smuggled behind: must never be answered
    response, closed = exchange(venue.control_port, raw)
    assert closed and status_of(response) in (400, 413), response[:200]
    assert response.count(b"HTTP/1.") == 1  # aiohttp answers a request it cannot parse as 1.0
    json_error(body_of(response))


def test_a_seek_past_the_end_of_the_recording_ends_it_cleanly(
    tmp_path: Path, synth_recording: Path
) -> None:
    """Once it left the replay "seeking" forever: now it stands at the end of the recording,
    finished and not seeking, and a seek back starts it again."""
    with bounded_venue(tmp_path, synth_recording) as sim:
        position = control(sim, "GET", "/status")["position_recv_ns"]
        control(sim, "POST", "/replay/seek", {"to": position + 10**15})
        finished = wait_until(
            lambda: (s := control(sim, "GET", "/status"))["state"] == "finished" and s,
            timeout_s=30,
            what="the replay to finish at the end of the recording",
        )
        assert isinstance(finished, dict) and finished["seeking"] is False
        control(sim, "POST", "/replay/seek", {"to": position})
        wait_until(
            lambda: control(sim, "GET", "/status")["state"] == "running",
            timeout_s=10,
            what="the replay to run again after a seek back",
        )


def test_a_slow_client_is_cut_off(venue: ReplayProcess) -> None:
    """A head that never ends is closed at the idle deadline (2 s in this test venue); a body
    that never ends gets a 408 at the body deadline (1 s)."""
    started = time.monotonic()
    with connect(venue.control_port) as sock:
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
        for _ in range(30):
            time.sleep(0.2)
            try:
                sock.sendall(b"X-A: b\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        _, closed = read_until_closed(sock, 5)
    assert closed and time.monotonic() - started < 7
    with connect(venue.control_port) as sock:
        sock.sendall(request("POST", "/replay/speed", body=b'{"speed": 2}', headers=AUTH)[:-4])
        status, _, body = read_response(sock)
    assert status == 408
    json_error(body)


def test_connections_over_the_cap_get_a_503(venue: ReplayProcess) -> None:
    socks = [connect(venue.control_port) for _ in range(80)]  # the test venue's cap is 64
    try:
        refused = 0
        for sock in socks:
            sock.settimeout(0.2)
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            if data.startswith(b"HTTP/1.1 503"):
                refused += 1
                assert json_error(body_of(data)) == "too many connections"
        assert refused >= 80 - 64
    finally:
        for sock in socks:
            sock.close()
    wait_until(
        lambda: (
            status_of(exchange(venue.control_port, request("GET", "/healthz", keep_alive=False))[0])
            == 200
        ),
        timeout_s=5,
        what="room for a connection again",
    )


# --- grammar fuzz -------------------------------------------------------------------------------

_JSON = json_values(["max", "+30s", "-1m", "+1e308s", "+infs", "+nans", "9" * 5000], key_size=8)
_FIELDS = st.sampled_from(
    [
        "speed",
        "to",
        "multiplier",
        "duration_ms",
        "kind",
        "stream",
        "client",
        "count",
        "min_drop_pct",
        "within_s",
        "lead_s",
        "symbol",
        "rate",
        "delay_ms",
        "status",
        "code",
    ]
)
_POSTS = st.sampled_from(
    [
        "/replay/speed",
        "/replay/seek",
        "/replay/burst",
        "/replay/seek-to-drop",
        "/faults",
        "/replay/pause",
        "/replay/resume",
    ]
)
_GETS = st.sampled_from(
    [
        "/status",
        "/faults",
        "/truth/orders",
        "/truth/balances",
        "/truth/refusals",
        "/truth/mids",
        "/truth/in-flight",
        "/readyz",
        "/healthz",
    ]
)


@st.composite
def _control_requests(draw: st.DrawFn) -> bytes:
    headers = (
        dict(AUTH) if draw(st.integers(0, 9)) else {"Authorization": draw(st.text(max_size=10))}
    )
    if draw(st.booleans()):
        path = draw(_GETS)
        query = draw(
            st.dictionaries(
                st.sampled_from(["since_ms", "symbol", "client_order_id"]),
                _JSON.map(str),
                max_size=2,
            )
        )
        target = path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
        from urllib.parse import quote

        return request("GET", quote(target, safe="/?=&"), headers=headers)
    body: Any = draw(st.dictionaries(_FIELDS, _JSON, max_size=4) | _JSON)
    raw = draw(st.sampled_from(["json", "json", "bytes"]))
    data = json.dumps(body).encode() if raw == "json" else draw(st.binary(min_size=1, max_size=30))
    return request(
        "POST", draw(_POSTS) if draw(st.integers(0, 9)) else "/faults/9", body=data, headers=headers
    )


@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=_control_requests())
def test_any_control_request_gets_a_json_answer_never_a_5xx(
    venue: ReplayProcess, raw: bytes
) -> None:
    with connect(venue.control_port) as sock:
        sock.sendall(raw)
        status, _, body = read_response(sock)
    ready_probe = raw.startswith(b"GET /readyz") and status == 503  # the market is re-syncing
    assert status < 500 or ready_probe, (raw[:300], status, body[:300])
    if status >= 400:
        json_error(body)
    response, _ = exchange(
        venue.control_port, request("GET", "/status", headers=AUTH, keep_alive=False)
    )
    assert status_of(response) == 200, "the control API still serves a well-formed request"
    control(venue, "DELETE", "/faults")  # what a request injected must not outlive it


# --- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content", [b"\x1f\x8b\x08\x00junk that is no gzip stream", b"not gzip at all", b""]
)
def test_serving_a_file_that_is_not_a_recording_is_one_clear_line_and_exit_2(
    tmp_path: Path, content: bytes
) -> None:
    junk = tmp_path / "junk.gz"
    junk.write_bytes(content)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "replay",
            "serve",
            "-r",
            str(junk),
            "--ws-port",
            "0",
            "--rest-port",
            "0",
            "--control-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replay: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
