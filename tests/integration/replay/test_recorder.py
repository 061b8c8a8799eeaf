"""`replay record` as a real process: it records what a feed sends, byte for byte, through
disconnects, file rotation and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from replay.recorder import RecorderArgumentError, RotatingSink, recorder_config
from replay.recording import Record, parse_line, read_records
from replay.tools.inspect import Inspector
from tests.helpers import SIM_TOKEN, ReplayProcess, process, replay_process, wait_until

pytestmark = pytest.mark.integration

ROUND_TRIP_STREAMS = "btcusdt@trade,btcusdt@bookTicker,btcusdt@depth@100ms"
ROTATED_NAME = re.compile(r"^recorded\.\d{8}T\d{6}\.\d{6}\.gz$")


# --- reading what was recorded ----------------------------------------------------------------


def read_so_far(path: Path) -> list[Record]:
    """Records flushed so far, from a file still being written.

    Such a file has no gzip trailer yet, and `read_records` reads in 1 MiB blocks, each failing
    as a whole on the missing trailer; so this decompresses what is on disk itself and keeps the
    complete lines.
    """
    data = path.read_bytes() if path.exists() else b""
    text = b""
    while data:
        member = zlib.decompressobj(wbits=31)
        text += member.decompress(data)
        data = member.unused_data if member.eof else b""
    records: list[Record] = []
    last_ns = 0
    for line in text[: text.rfind(b"\n") + 1].split(b"\n")[:-1]:
        record = parse_line(line)
        if record is None:
            records.append(Record(last_ns, b""))
        else:
            last_ns = record.recv_ns
            records.append(record)
    return records


def stream_messages(records: Iterable[Record]) -> list[bytes]:
    return [r.payload for r in records if r.payload.startswith(b'{"stream"')]


def snapshots(records: Iterable[Record]) -> list[bytes]:
    return [r.payload for r in records if r.payload.startswith(b'{"lastUpdateId"')]


def rotated_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("recorded.*.gz"))


def assert_same_sequence(recorded: list[bytes], source: list[bytes]) -> None:
    """Names the first differing message instead of diffing thousands of them."""
    for index, (got, want) in enumerate(zip(recorded, source, strict=False)):
        assert got == want, f"message {index} differs:\n got {got[:200]!r}\nwant {want[:200]!r}"
    assert len(recorded) == len(source), f"recorded {len(recorded)}, source has {len(source)}"


def log_events(log: Path, event: str) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(entry)
    return found


# --- processes --------------------------------------------------------------------------------


@contextmanager
def recorder(
    tmp: Path, url: str, streams: str, out: Path, *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """The recorder as a real process; ready once it has created its first file."""
    argv = [sys.executable, "-m", "replay", "record", "--url", url, "--streams", streams]
    argv += ["--out", str(out), *extra]

    def first_file_created() -> bool:
        return bool(rotated_files(out.parent)) if "--rotate-mb" in extra else out.exists()

    with process(argv, log=tmp / "recorder.log", ready=first_file_created) as proc:
        yield proc


def terminate(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def control(replay: ReplayProcess, path: str, *, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(
        f"{replay.control_url}{path}",
        method=method,
        headers={"Authorization": f"Bearer {SIM_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body: dict[str, Any] = json.load(response)
        return body


def record_whole_replay(
    tmp: Path,
    recording: Path,
    out: Path,
    *extra: str,
    timeout_s: float,
    streams: str = ROUND_TRIP_STREAMS,
) -> list[bytes]:
    """Record a paused replay from its first message to its last, then SIGTERM the recorder.
    Returns the source's stream messages."""
    source = stream_messages(read_records(recording))
    rotating = "--rotate-mb" in extra

    def recorded() -> list[Record]:
        files = rotated_files(out.parent) if rotating else [out]
        return [r for path in files for r in read_so_far(path)]

    def complete() -> bool:
        records = recorded()
        return len(stream_messages(records)) >= len(source) and bool(snapshots(records))

    with (
        replay_process(tmp, recording, speed="max", extra=["--no-rebase", "--paused"]) as replay,
        recorder(tmp, replay.ws_url, streams, out, "--rest-url", replay.rest_url, *extra) as proc,
    ):
        wait_until(
            lambda: control(replay, "/status")["clients"] >= 1,
            timeout_s=30,
            what="the recorder to connect to the replay",
        )
        control(replay, "/replay/resume", method="POST")
        wait_until(
            lambda: control(replay, "/status")["state"] == "finished",
            timeout_s=timeout_s,
            what="the replay to finish",
            interval_s=0.2,
        )
        wait_until(complete, timeout_s=60, what="every message on disk", interval_s=0.5)
        if rotating:
            for closed in rotated_files(out.parent)[:-1]:
                list(read_records(closed))  # a rotated file is complete: no EOFError
        assert terminate(proc) == 0
    return source


# --- a feed the test controls -----------------------------------------------------------------


class FakeVenue:
    """A Binance-like endpoint on loopback: streams numbered messages on every connection, serves
    depth snapshots, and can cut the connection without a close frame. Runs its own loop in a
    thread so that the test can block on `wait_until`."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.connections = 0
        self.snapshot_requests = 0
        self.attempted: list[bytes] = []
        """Every message handed to send(), in order."""
        self.confirmed = 0
        """How many of them send() accepted before the connection closed."""
        self._seq = 0
        self._current: ServerConnection | None = None
        self._ws_server: Server | None = None
        self._runner: web.AppRunner | None = None
        self.ws_port = 0
        self.rest_port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def __enter__(self) -> FakeVenue:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def drop(self) -> None:
        """Cut the current connection as a network failure would: no close handshake."""

        def abort() -> None:
            if self._current is not None:
                self._current.transport.abort()

        self.loop.call_soon_threadsafe(abort)

    async def _start(self) -> None:
        self._ws_server = await serve(self._stream, "127.0.0.1", 0, compression=None)
        self.ws_port = next(iter(self._ws_server.sockets)).getsockname()[1]
        app = web.Application()
        app.router.add_get("/api/v3/depth", self._depth)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.rest_port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._ws_server is not None:
            self._ws_server.close()
            await self._ws_server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

    def _next_message(self) -> bytes:
        self._seq += 1
        now_ms = time.time_ns() // 1_000_000
        if self._seq % 2:
            return (
                b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":%d,"s":"BTCUSDT",'
                b'"U":%d,"u":%d,"b":[["1.00","1.0"]],"a":[]}}' % (now_ms, self._seq, self._seq)
            )
        return (
            b'{"stream":"btcusdt@trade","data":{"e":"trade","E":%d,"s":"BTCUSDT","t":%d,'
            b'"p":"1.00","q":"0.1","T":%d,"m":true}}' % (now_ms, self._seq, now_ms)
        )

    async def _stream(self, ws: ServerConnection) -> None:
        self.connections += 1
        self._current = ws
        try:
            while True:
                payload = self._next_message()
                self.attempted.append(payload)
                await ws.send(payload.decode())
                self.confirmed += 1
                await asyncio.sleep(self.interval_s)
        except ConnectionClosed:
            return

    async def _depth(self, request: web.Request) -> web.Response:
        self.snapshot_requests += 1
        assert request.query.get("symbol") == "BTCUSDT"
        body = b'{"lastUpdateId":%d,"bids":[["1.00","1.0"]],"asks":[["2.00","1.0"]]}' % self._seq
        return web.Response(body=body, content_type="application/json")


def venue_number(message: bytes) -> int:
    """The FakeVenue's running number of a message (update id or trade id)."""
    data = json.loads(message)["data"]
    return int(data["u"] if "u" in data else data["t"])


# --- tests ------------------------------------------------------------------------------------


def test_round_trip_records_the_replayed_stream_byte_for_byte(
    tmp_path: Path, shared_recording: Path
) -> None:
    out = tmp_path / "recorded.gz"
    source = record_whole_replay(
        tmp_path, shared_recording, out, "--flush-ms", "200", timeout_s=240
    )
    records = list(read_records(out))  # complete gzip: the recorder closed it
    assert_same_sequence(stream_messages(records), source)
    assert snapshots(records), "no REST depth snapshot recorded"
    stamps = [r.recv_ns for r in records if not r.is_disconnect]
    assert all(a <= b for a, b in pairwise(stamps)), "receive time went back"


def test_a_coin_m_recording_round_trips_with_its_snapshot_from_dapi(
    tmp_path: Path, shared_data: Path
) -> None:
    out = tmp_path / "recorded.gz"
    source = record_whole_replay(
        tmp_path,
        shared_data / "binance-coinm/ethusd_perp_20240808.gz",
        out,
        "--flush-ms",
        "200",
        timeout_s=240,
        streams="ethusd_perp@trade,ethusd_perp@bookTicker,ethusd_perp@depth@0ms",
    )
    records = list(read_records(out))
    assert_same_sequence(stream_messages(records), source)
    (snapshot, *_) = snapshots(records)
    assert b'"symbol":"ETHUSD_PERP","pair":"ETHUSD"' in snapshot, "GET /dapi/v1/depth's body"
    inspector = Inspector()
    inspector.add(records, str(out))
    depth = inspector.report()["depth"]["ethusd_perp@depth@0ms"]
    assert depth["gaps"] == 0, depth["gap_list"][:3]


def test_the_stream_host_names_the_market_and_its_snapshot_endpoint(tmp_path: Path) -> None:
    def config(url: str, streams: str, **extra: str) -> tuple[str | None, str]:
        made = recorder_config(url=url, streams=streams, out=tmp_path / "r.gz", **extra)
        return made.rest_url, made.market.value

    assert config("wss://fstream.binance.com", "ethusdt@depth@0ms") == (
        "https://fapi.binance.com",
        "usdm",
    )
    assert config("wss://dstream.binance.com", "ethusd_perp@depth@100ms") == (
        "https://dapi.binance.com",
        "coinm",
    )
    assert config("wss://stream.binance.com:9443", "btcusdt@depth@100ms") == (
        "https://api.binance.com",
        "spot",
    )
    local = {"rest_url": "http://127.0.0.1:9"}
    assert config("ws://127.0.0.1:9", "ethusd_perp@trade", **local)[1] == "coinm"
    assert config("ws://127.0.0.1:9", "ethusdt@markPrice@1s", **local)[1] == "usdm"
    assert config("ws://127.0.0.1:9", "btcusdt@trade", **local)[1] == "spot"
    assert config("ws://127.0.0.1:9", "btcusdt@trade", market="usdm", **local)[1] == "usdm"
    with pytest.raises(RecorderArgumentError, match="--market"):
        config("ws://127.0.0.1:9", "btcusdt@trade", market="options")


def test_disconnect_writes_a_marker_then_reconnects_with_a_new_snapshot(tmp_path: Path) -> None:
    out = tmp_path / "recorded.gz"
    streams = "btcusdt@trade,btcusdt@depth@100ms"
    with (
        FakeVenue(interval_s=0.002) as venue,
        recorder(
            tmp_path, venue.ws_url, streams, out, "--rest-url", venue.rest_url, "--flush-ms", "100"
        ) as proc,
    ):

        def recorded_with(snapshot_count: int, after_marker: int) -> bool:
            records = read_so_far(out)
            markers = [i for i, r in enumerate(records) if r.is_disconnect]
            tail = records[markers[-1] + 1 :] if markers else records
            return (
                len(snapshots(records)) >= snapshot_count
                and len(stream_messages(tail)) >= after_marker
            )

        wait_until(lambda: recorded_with(1, 50), timeout_s=30, what="a first connection on disk")
        venue.drop()
        wait_until(lambda: venue.connections >= 2, timeout_s=30, what="the recorder to reconnect")
        wait_until(
            lambda: recorded_with(2, 50) and any(r.is_disconnect for r in read_so_far(out)),
            timeout_s=30,
            what="a marker, a second snapshot and more messages on disk",
        )
        assert terminate(proc) == 0

    records = list(read_records(out))
    markers = [i for i, r in enumerate(records) if r.is_disconnect]
    assert len(markers) == 2, f"expected the drop and the shutdown, got markers at {markers}"
    first, second = records[: markers[0]], records[markers[0] + 1 : markers[1]]
    assert snapshots(first)
    assert snapshots(second), "no snapshot after reconnecting"
    assert len(stream_messages(second)) >= 50, "did not keep recording after reconnecting"
    assert venue.snapshot_requests >= 2
    numbers = [venue_number(m) for m in stream_messages(records)]
    assert numbers == sorted(set(numbers)), "messages duplicated or out of order"
    log = tmp_path / "recorder.log"
    reasons = [e["reason"] for e in log_events(log, "ws_disconnected")]
    assert reasons[0] == "connection lost without a close frame"
    assert log_events(log, "reconnect_scheduled")


def test_rotation_splits_the_recording_without_losing_or_repeating_anything(
    tmp_path: Path, synth_recording: Path
) -> None:
    out = tmp_path / "recorded.gz"
    source = record_whole_replay(
        tmp_path, synth_recording, out, "--rotate-mb", "0.05", "--flush-ms", "100", timeout_s=120
    )
    files = rotated_files(tmp_path)
    assert len(files) >= 3, f"expected several files, got {[f.name for f in files]}"
    assert not out.exists(), "with rotation on, nothing is written to the plain path"
    assert all(ROTATED_NAME.match(f.name) for f in files), [f.name for f in files]
    per_file = [list(read_records(f)) for f in files]
    everything = [r for records in per_file for r in records]
    assert_same_sequence(stream_messages(everything), source)
    markers = [i for i, r in enumerate(everything) if r.is_disconnect]
    assert markers == [len(everything) - 1], "only the shutdown may leave a disconnect marker"


def test_sigterm_writes_every_message_already_received(tmp_path: Path) -> None:
    """SIGTERM arrives while messages wait unread in the recorder's socket: each of them is still
    written, and the file is complete (no periodic flush here: only the shutdown writes it)."""
    out = tmp_path / "recorded.gz"
    with (
        FakeVenue(interval_s=0) as venue,
        recorder(tmp_path, venue.ws_url, "btcusdt@trade", out, "--flush-ms", "600000") as proc,
    ):
        wait_until(lambda: venue.confirmed >= 500, timeout_s=30, what="messages to flow")
        proc.send_signal(signal.SIGSTOP)
        backlog = venue.confirmed + 8000  # above websockets' 4096-frame queue: some stay unread
        wait_until(
            lambda: venue.confirmed >= backlog,
            timeout_s=30,
            what="a backlog in the frozen recorder's socket",
        )
        proc.send_signal(signal.SIGTERM)  # delivered on SIGCONT, with the backlog unread
        proc.send_signal(signal.SIGCONT)
        assert proc.wait(timeout=30) == 0
        confirmed, attempted = venue.confirmed, list(venue.attempted)

    records = list(read_records(out))  # complete gzip: closed at shutdown
    recorded = stream_messages(records)
    stopped = log_events(tmp_path / "recorder.log", "recorder_stopped")
    assert len(stopped) == 1
    assert stopped[0]["messages"] == len(recorded)
    assert recorded == attempted[: len(recorded)], "recorded messages differ from those sent"
    assert len(recorded) >= confirmed, "messages the venue sent before the close were lost"
    assert records[-1].is_disconnect


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--streams", "BTCUSDT-trade"], "is not a Binance stream name"),
        (["--streams", "btcusdt@depth@100ms"], "--rest-url is required"),
        (["--url", "http://127.0.0.1:9"], "--url must be a ws:// or wss://"),
        (["--out", "recorded.txt"], "--out must name a .gz file"),
        (["--rotate-mb", "0"], "--rotate-mb must be positive"),
        (["--flush-ms", "soon"], "--flush-ms must be a number"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    options = {"--url": "ws://127.0.0.1:9", "--streams": "btcusdt@trade", "--out": "recorded.gz"}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = [sys.executable, "-m", "replay", "record"]
    for name, value in options.items():
        argv += [name, value]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert not list(tmp_path.iterdir()), "nothing is created for bad arguments"


class SteppedClock:
    """Wall and monotonic time that move only when told to (the recorder's clock shape)."""

    def __init__(self, start_ns: int) -> None:
        self.wall_ns = start_ns
        self.mono_ns = 0

    def time_ns(self) -> int:
        return self.wall_ns

    def monotonic_ns(self) -> int:
        return self.mono_ns

    def advance_ms(self, ms: int) -> None:
        self.wall_ns += ms * 1_000_000
        self.mono_ns += ms * 1_000_000


def test_time_rotation_follows_the_injected_clock(tmp_path: Path) -> None:
    clock = SteppedClock(start_ns=1_700_000_000_000_000_000)  # 2023-11-14T22:13:20Z
    config = recorder_config(
        url="ws://127.0.0.1:9", streams="btcusdt@trade", out=tmp_path / "r.gz", rotate_minutes=1
    )
    sink = RotatingSink(config, clock)
    sink.open()
    sink.write(clock.time_ns(), b'{"stream":"a"}')
    clock.advance_ms(59_999)
    sink.write(clock.time_ns(), b'{"stream":"b"}')
    clock.advance_ms(1)
    sink.write(clock.time_ns(), b'{"stream":"c"}')
    sink.close()
    assert [p.name for p in sink.paths] == [
        "r.20231114T221320.000000.gz",
        "r.20231114T221420.000001.gz",
    ]
    assert [stream_messages(read_records(p)) for p in sink.paths] == [
        [b'{"stream":"a"}', b'{"stream":"b"}'],
        [b'{"stream":"c"}'],
    ]
