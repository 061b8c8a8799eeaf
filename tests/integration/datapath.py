"""A real data path for tests: redis, toxiproxy, a replay feed, and `engine run feed` with two
feeds, each through its own Toxiproxy route to the replay feed."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis as redis_sync

from engine.bus.base import md_stream
from engine.core.messages import BusMessage, decode
from harness.ports import free_ports
from harness.toxiproxy import ToxiproxyClient
from tests.helpers import (
    ReplayProcess,
    http_ok,
    process,
    redis,
    replay_process,
    toxiproxy,
)


@dataclass
class DataPath:
    tmp: Path
    redis_port: int
    toxi: ToxiproxyClient
    sim: ReplayProcess
    ops_port: int
    log: Path

    def messages(self, symbol: str = "BTCUSDT") -> list[BusMessage]:
        client = redis_sync.Redis(port=self.redis_port)
        entries = client.xrange(md_stream("binance", symbol))
        client.close()
        return [decode(fields[b"m"]) for _, fields in entries]

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}/status", timeout=2) as r:
            result: dict[str, Any] = json.loads(r.read())
            return result

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}/metrics", timeout=2) as r:
            return r.read().decode()

    def log_events(self, event: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("event") == event:
                out.append(record)
        return out


@contextmanager
def data_path(
    tmp: Path,
    recording: Path,
    *,
    speed: str = "5",
    feeds: int = 2,
    feed_toml: str = "",
    symbol: str = "BTCUSDT",
    venue_toml: str = "",
) -> Iterator[DataPath]:
    with ExitStack() as stack:
        redis_port = stack.enter_context(redis(tmp))
        toxi_port = stack.enter_context(toxiproxy(tmp))
        sim = stack.enter_context(replay_process(tmp, recording, speed=speed))
        toxi = ToxiproxyClient("127.0.0.1", toxi_port)
        listen = free_ports(feeds + 1)
        toxi.ensure_proxies(
            [
                {
                    "name": f"feed{i}",
                    "listen": f"127.0.0.1:{listen[i]}",
                    "upstream": f"127.0.0.1:{sim.ws_port}",
                }
                for i in range(feeds)
            ]
        )
        ops = free_ports(4)
        config = tmp / "feed.toml"
        urls = ", ".join(f'"ws://127.0.0.1:{listen[i]}"' for i in range(feeds))
        config.write_text(f"""
[venue]
ws_urls = [{urls}]
rest_url = "{sim.rest_url}"
symbols = ["{symbol}"]
{venue_toml}
[bus]
redis_url = "redis://127.0.0.1:{redis_port}/0"
[feed]
reconnect_base_ms = 50
reconnect_cap_ms = 2000
{feed_toml}
[ops.ports]
feed = {ops[0]}
strategy = {ops[1]}
risk = {ops[2]}
execution = {ops[3]}
""")
        log = tmp / "engine-feed.log"
        argv = [sys.executable, "-m", "engine", "run", "feed", "--config", str(config)]
        engine = stack.enter_context(
            process(argv, log=log, ready=lambda: http_ok(f"http://127.0.0.1:{ops[0]}/readyz"))
        )
        yield DataPath(tmp, redis_port, toxi, sim, ops[0], log)
        engine.terminate()
        assert engine.wait(timeout=20) == 0, "the feed exits cleanly"


def trade_ids(messages: list[BusMessage]) -> list[int]:
    from engine.core.messages import Trade

    return [m.trade_id for m in messages if isinstance(m, Trade)]


def assert_exactly_once(ids: list[int]) -> None:
    """No duplicate, and no gap between the first and the last id seen."""
    assert len(ids) == len(set(ids)), "duplicates on the bus"
    assert sorted(ids) == list(range(min(ids), max(ids) + 1)), "a gap on the bus"
