"""The replay feed is indistinguishable from the exchange to real clients."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import socket
import struct
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
import pytest
import websockets

from engine.core.book import DepthDiff, DepthSync
from engine.execution.venue import binance_api_urls
from replay.recording import read_records
from replay.synth import SynthSpec, write_recording
from tests.helpers import SIM_TOKEN, ReplayProcess, control, replay_process, wait_until

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {SIM_TOKEN}"}


def offline_book_at(recording: Path, update_id: int) -> DepthSync:
    """Rebuild the book from the recording alone, up to the given update id."""
    sync = DepthSync()
    for record in read_records(recording):
        if not record.payload:
            continue
        message = json.loads(record.payload)
        if "lastUpdateId" in message:
            sync.on_snapshot(
                message["lastUpdateId"],
                [(float(p), float(q)) for p, q in message["bids"]],
                [(float(p), float(q)) for p, q in message["asks"]],
            )
        elif message["stream"].endswith("@depth@100ms"):
            d = message["data"]
            sync.on_diff(
                DepthDiff(
                    d["U"],
                    d["u"],
                    [(float(p), float(q)) for p, q in d["b"]],
                    [(float(p), float(q)) for p, q in d["a"]],
                )
            )
            if sync.synced and sync.book.update_id >= update_id:
                break
    assert sync.book.update_id == update_id
    return sync


async def test_unmodified_ccxt_pro_watches_trades_ticker_and_book(
    tmp_path: Path, shared_recording: Path
) -> None:
    with replay_process(tmp_path, shared_recording, speed="10") as feed:
        exchange = ccxtpro.binance(
            {
                "options": {
                    "defaultType": "spot",
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                }
            }
        )
        exchange.urls["api"] = {
            **binance_api_urls(feed.rest_url),
            "ws": {"spot": f"{feed.ws_url}/ws", "margin": f"{feed.ws_url}/ws"},
        }
        try:
            trades = await asyncio.wait_for(exchange.watch_trades("BTC/USDT"), 20)
            assert trades
            assert trades[-1]["symbol"] == "BTC/USDT"
            assert trades[-1]["price"] > 0
            ticker = await asyncio.wait_for(exchange.watch_ticker("BTC/USDT"), 20)
            assert ticker["last"] > 0
            assert ticker["baseVolume"] > 0
            book = await asyncio.wait_for(exchange.watch_order_book("BTC/USDT"), 20)
            for _ in range(5):
                book = await asyncio.wait_for(exchange.watch_order_book("BTC/USDT"), 20)
            nonce = book["nonce"]
            bids, asks = (
                [list(level) for level in book["bids"]],
                [list(level) for level in book["asks"]],
            )
        finally:
            await exchange.close()
    offline = offline_book_at(shared_recording, nonce)
    depth = 100
    assert bids[:depth] == [list(level) for level in offline.book.bids.top(depth)]
    assert asks[:depth] == [list(level) for level in offline.book.asks.top(depth)]


def test_seek_moves_the_clock_and_keeps_the_book_consistent(
    tmp_path: Path, synth_recording: Path
) -> None:
    with replay_process(tmp_path, synth_recording, speed="1") as feed:
        position = lambda: int(control(feed, "GET", "/status")["position_recv_ns"])  # noqa: E731
        before = position()
        control(feed, "POST", "/replay/seek", {"to": "+60s"})
        wait_until(lambda: position() >= before + 60e9, timeout_s=20, what="the seek forward")
        control(feed, "POST", "/replay/seek", {"to": "-50s"})
        wait_until(
            lambda: before + 5e9 <= position() < before + 40e9,
            timeout_s=20,
            what="the seek backwards",
        )
        books = wait_until(
            lambda: (b := control(feed, "GET", "/status")["books"])["BTCUSDT"]["synced"] and b,
            timeout_s=20,
            what="the book to be rebuilt",
        )
        assert books
        with urllib.request.urlopen(f"{feed.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=5") as r:
            depth = json.loads(r.read())
        assert float(depth["bids"][0][0]) < float(depth["asks"][0][0])
        with pytest.raises(urllib.error.HTTPError) as refused:
            control(feed, "POST", "/replay/seek", {"to": "soon"})
        assert refused.value.code == 400


def raw_websocket(port: int, path: str) -> socket.socket:
    """A client that completes the handshake and then never reads nor answers pings."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a tiny window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert b" 101 " in response.split(b"\r\n")[0]
    return sock


def read_frames_until_close(sock: socket.socket, timeout_s: float) -> list[int]:
    """Opcodes of the frames received until the server closes (8) or the socket ends."""
    sock.settimeout(timeout_s)
    opcodes = []
    buffer = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return opcodes
        if not chunk:
            return opcodes
        buffer += chunk
        while len(buffer) >= 2:
            length = buffer[1] & 0x7F
            header = 2
            if length == 126:
                if len(buffer) < 4:
                    break
                length, header = struct.unpack("!H", buffer[2:4])[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                length, header = struct.unpack("!Q", buffer[2:10])[0], 10
            if len(buffer) < header + length:
                break
            opcodes.append(buffer[0] & 0x0F)
            buffer = buffer[header + length :]
            if opcodes[-1] == 8:
                return opcodes


def test_server_pings_and_drops_a_client_that_never_pongs(
    tmp_path: Path, synth_recording: Path
) -> None:
    extra = ["--ping-interval", "0.3", "--ping-timeout", "0.6"]
    with replay_process(tmp_path, synth_recording, speed="1", extra=extra) as feed:
        sock = raw_websocket(feed.ws_port, "/ws")  # no subscriptions: only control frames
        opcodes = read_frames_until_close(sock, timeout_s=10)
        sock.close()
    assert 9 in opcodes, "the server pinged"
    assert opcodes[-1] == 8, "and closed the connection when no pong came"


async def test_a_client_that_answers_pings_stays_connected(
    tmp_path: Path, synth_recording: Path
) -> None:
    extra = ["--ping-interval", "0.2", "--ping-timeout", "0.4"]
    with replay_process(tmp_path, synth_recording, speed="1", extra=extra) as feed:
        async with websockets.connect(f"{feed.ws_url}/ws/btcusdt@trade", ping_interval=None) as ws:
            received = 0
            loop = asyncio.get_running_loop()
            end = loop.time() + 1.5  # several ping timeouts long
            while loop.time() < end:
                await asyncio.wait_for(ws.recv(), 5)
                received += 1
            assert received > 5


def test_at_max_speed_a_stuck_client_is_dropped_and_the_replay_goes_on(tmp_path: Path) -> None:
    """More data than the kernel's socket buffers hold, and a client that never reads."""
    recording = tmp_path / "long.gz"
    write_recording(SynthSpec(duration_s=900, seed=11, regime="volatile"), recording)
    extra = ["--paused", "--client-queue", "200", "--max-stall", "1"]
    with replay_process(tmp_path, recording, speed="max", extra=extra) as feed:
        stuck = raw_websocket(
            feed.ws_port, "/ws/btcusdt@bookTicker/btcusdt@depth@100ms/btcusdt@trade"
        )
        wait_until(
            lambda: control(feed, "GET", "/status")["clients"] == 1,
            timeout_s=10,
            what="the stuck client to connect",
        )
        control(feed, "POST", "/replay/resume", {})
        final = wait_until(
            lambda: (s := control(feed, "GET", "/status"))["state"] == "finished" and s,
            timeout_s=60,
            what="the replay to finish despite the stuck client",
        )
        stuck.close()
    assert final["slow_disconnects"] == 1  # type: ignore[index]


async def _post(feed: ReplayProcess, path: str, body: Any = None) -> None:
    async with (
        aiohttp.ClientSession(headers=AUTH) as http,
        http.post(f"{feed.control_url}{path}", json=body or {}) as response,
    ):
        assert response.status == 200


async def test_several_files_replay_as_one_continuous_day(
    tmp_path: Path, synth_recording: Path
) -> None:
    with gzip.open(synth_recording, "rb") as source:
        lines = source.read().splitlines(keepends=True)
    half = len(lines) // 2
    first, second = tmp_path / "part1.gz", tmp_path / "part2.gz"
    first.write_bytes(gzip.compress(b"".join(lines[:half])))
    second.write_bytes(gzip.compress(b"".join(lines[half:])))
    extra = ["--recording", str(second), "--paused"]
    with replay_process(tmp_path, first, speed="max", extra=extra) as feed:
        async with websockets.connect(f"{feed.ws_url}/ws/btcusdt@depth@100ms") as ws:
            await _post(feed, "/replay/resume")
            previous = None
            count = 0
            while True:
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 3))
                except TimeoutError:
                    break
                if previous is not None:
                    assert message["U"] == previous["u"] + 1
                previous = message
                count += 1
    depth_lines = sum(1 for line in lines if b"@depth" in line)
    assert count == depth_lines


async def test_rebasing_can_be_switched_off(tmp_path: Path, synth_recording: Path) -> None:
    recorded = [
        json.loads(r.payload)["data"]
        for r in read_records(synth_recording)
        if b"@trade" in r.payload
    ][:3]
    with replay_process(
        tmp_path, synth_recording, speed="max", extra=["--no-rebase", "--paused"]
    ) as feed:
        async with websockets.connect(f"{feed.ws_url}/ws/btcusdt@trade") as ws:
            await _post(feed, "/replay/resume")
            served = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
    assert served == recorded


def test_pacing_error_is_reported(tmp_path: Path, synth_recording: Path) -> None:
    with replay_process(tmp_path, synth_recording, speed="1") as feed:
        wait_until(
            lambda: control(feed, "GET", "/status")["pacing_error"].get("count", 0) > 50,
            timeout_s=20,
            what="paced messages",
        )
        pacing = control(feed, "GET", "/status")["pacing_error"]
    assert 0 <= pacing["p50_ms"] <= pacing["p99_ms"] <= pacing["max_ms"]
