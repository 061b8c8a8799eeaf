"""Acceptance: a plain `chaos run` of our experiments leaves nothing broken behind, even when
Chaos Toolkit does not play the rollbacks. The stormproof control restores the stack (every link
up, every toxic gone) when the experiment ends, and records what it did."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.stack import Stack
from tests.helpers import synthetic_stack

pytestmark = pytest.mark.integration
CHAOS = str(Path(sys.executable).with_name("chaos"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with synthetic_stack(tmp_path_factory.mktemp("restore"), duration_s=600, seed=11) as running:
        yield running


def _action(name: str, module: str, func: str, **arguments: Any) -> dict[str, Any]:
    return {
        "type": "action",
        "name": name,
        "provider": {"type": "python", "module": module, "func": func, "arguments": arguments},
    }


def _toxiproxy(stack: Stack, path: str) -> Any:
    url = f"http://127.0.0.1:{stack.ports['toxiproxy']}{path}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_without_rollbacks_the_control_still_restores_every_link(
    stack: Stack, tmp_path: Path
) -> None:
    experiment = {
        "title": "a link left down and a toxic left on",
        "description": "rollbacks are never played: the control must restore the stack",
        "controls": [
            {
                "name": "stormproof",
                "provider": {"type": "python", "module": "harness.chaos.control"},
            }
        ],
        "method": [
            _action("rest down", "harness.chaos.network", "link_down", link="engine_to_rest"),
            _action(
                "feed latency",
                "harness.chaos.network",
                "add_latency",
                link="engine_to_feed",
                latency_ms=300,
            ),
        ],
        "rollbacks": [
            _action("rest up", "harness.chaos.network", "link_up", link="engine_to_rest"),
        ],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    before = (
        (stack.run_dir / "activities.jsonl").read_text().count("\n")
        if (stack.run_dir / "activities.jsonl").exists()
        else 0
    )

    result = subprocess.run(
        [
            CHAOS, "--no-version-check", "--log-file", str(tmp_path / "chaos.log"),
            "run", "--rollback-strategy", "never",
            "--journal-path", str(tmp_path / "journal.json"), str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"STORMPROOF_RUN_DIR": str(stack.run_dir), "PATH": str(Path(CHAOS).parent)},
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert [r["activity"]["name"] for r in journal["run"]] == ["rest down", "feed latency"]
    assert journal["rollbacks"] == [], "the rollbacks were not what restored the stack"
    proxies = _toxiproxy(stack, "/proxies")
    assert all(proxy["enabled"] for proxy in proxies.values()), proxies
    assert all(proxy["toxics"] == [] for proxy in proxies.values()), proxies
    records = [
        json.loads(line)
        for line in (stack.run_dir / "activities.jsonl").read_text().splitlines()[before:]
    ]
    restore = [r for r in records if r.get("phase") == "restore"]
    assert len(restore) == 1
    assert "engine_to_rest" in restore[0]["result"]["reset links"]["links"]
    assert restore[0]["ts_ns"] >= max(r["ts_ns"] for r in records if r.get("phase") == "method")


def test_the_stacks_bus_refuses_anyone_without_a_password_and_each_service_sees_only_its_own(
    stack: Stack,
) -> None:
    """Issue 18's attack on a running stack: `XADD control * m {pause}` without credentials is
    refused, the strategy's own password cannot pause either, and each supervised process holds
    only its own Redis password (read from /proc, not from our own config)."""
    import redis as redis_sync
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    pause = {"m": b'{"type":"control","v":1,"command":"pause","reason":"attack"}'}
    once = Retry(NoBackoff(), 0)
    with (
        redis_sync.Redis(port=stack.ports["redis"], socket_timeout=2, retry=once) as anonymous,
        pytest.raises(redis_sync.exceptions.AuthenticationError),
    ):
        anonymous.xadd("control", pause)
    with (
        stack.redis_client("strategy", socket_timeout=2) as strategy,
        pytest.raises(redis_sync.exceptions.NoPermissionError),
    ):
        strategy.xadd("control", pause)
    secrets = stack.secrets
    processes = stack.state()["processes"]
    for name, user in (("engine-feed", "FEED"), ("engine-execution", "EXECUTION")):
        environ = Path(f"/proc/{processes[name]['pid']}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        assert env["STORMPROOF_REDIS_PASSWORD"] == secrets[f"STORMPROOF_REDIS_PASSWORD_{user}"]
        assert not [k for k in env if k.startswith("STORMPROOF_REDIS_PASSWORD_")], name
        assert "STORMPROOF_SIM_CONTROL_TOKEN" not in env, "the engine never holds the oracle's key"
    replay = Path(f"/proc/{processes['replay']['pid']}/environ").read_bytes()
    assert b"STORMPROOF_OPS_TOKEN" not in replay and b"STORMPROOF_REDIS_PASSWORD" not in replay
