"""The deployment's engine configs and Toxiproxy links are rendered from the engine's structs:
the committed files are a fresh render, the engine accepts them, and they name only the links
and Services the manifests define."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import msgspec
import pytest

from engine.config import parse_config
from engine.core.errors import ConfigError
from engine.strategy.registry import STRATEGY_PARAMS
from harness.deploy import config

pytestmark = pytest.mark.unit


def test_the_committed_files_are_a_fresh_render() -> None:
    assert config.stale() == [], "run `stormproof deploy render-config`"


def test_an_edited_file_is_found_stale_and_rendered_again(tmp_path: Path) -> None:
    root = tmp_path / "kubernetes"
    shutil.copytree(config.DEPLOY_ROOT, root, ignore=shutil.ignore_patterns("secrets"))
    edited = root / config.STAGING_CONFIG
    edited.write_text(edited.read_text().replace("ttl_ms = 5000", "ttl_ms = 9000"))
    (root / config.TOXIPROXY_CONFIG).unlink()
    expected = sorted([edited, root / config.TOXIPROXY_CONFIG])
    assert sorted(config.stale(root)) == expected
    assert sorted(config.write_rendered(root)) == expected
    assert config.stale(root) == []
    assert edited.read_bytes() == config.rendered()[config.STAGING_CONFIG]


@pytest.mark.parametrize("relative", [config.STAGING_CONFIG, config.PRODUCTION_CONFIG])
def test_the_engine_accepts_each_config(relative: Path) -> None:
    data = (config.DEPLOY_ROOT / relative).read_bytes()
    parsed = parse_config(data, strategy_params=STRATEGY_PARAMS, source=str(relative))
    assert parsed.lease.backend == "kubernetes"
    assert (parsed.lease.namespace, parsed.lease.name) == (config.NAMESPACE, config.LEASE_NAME)
    assert parsed.execution.journal_backend == "postgres"
    assert parsed.ops.host == "0.0.0.0" and parsed.ops.ports == config.OPS_PORTS
    # redundant feeds: two connections, to two distinct endpoints
    assert len(parsed.venue.ws_urls) == 2 and len(set(parsed.venue.ws_urls)) == 2
    assert parsed.venue.symbols == list(config.SYMBOLS)


def test_a_config_the_engine_refuses_is_not_rendered() -> None:
    staging = config.staging_config()
    clash = msgspec.structs.replace(
        staging,
        ops=msgspec.structs.replace(staging.ops, ports={**config.OPS_PORTS, "risk": 9101}),
    )
    with pytest.raises(ConfigError, match=r"ops\.ports\.risk"):
        config.engine_toml(clash, source="test")


def test_every_staging_endpoint_is_a_toxiproxy_link_to_a_service() -> None:
    staging = tomllib.loads((config.DEPLOY_ROOT / config.STAGING_CONFIG).read_text())
    proxies = json.loads((config.DEPLOY_ROOT / config.TOXIPROXY_CONFIG).read_text())
    listening = {int(p["listen"].rsplit(":", 1)[1]): p for p in proxies}
    urls = [
        *staging["venue"]["ws_urls"],
        staging["venue"]["rest_url"],
        staging["venue"]["user_stream_url"],
        staging["bus"]["redis_url"],
    ]
    used = set()
    for url in urls:
        host, port = url.split("://", 1)[1].split("/", 1)[0].split(":")
        assert host == "toxiproxy", url
        used.add(listening[int(port)]["name"])
    # each engine link of the local stack has its proxy; the journal's is in the DSN (a Secret)
    assert used == {link.name for link in config.LINKS} - {"execution_to_journal"}
    assert [p["name"] for p in proxies] == [link.name for link in config.LINKS]
    services = {"venue", "redis", "postgres"}
    assert {p["upstream"].split(":")[0] for p in proxies} == services


def test_production_goes_to_the_venue_and_redis_directly() -> None:
    production = tomllib.loads((config.DEPLOY_ROOT / config.PRODUCTION_CONFIG).read_text())
    text = json.dumps(production)
    assert "toxiproxy" not in text
    assert production["bus"]["redis_url"] == "redis://redis:6379/0"
    assert all(url.startswith("wss://") for url in production["venue"]["ws_urls"])
