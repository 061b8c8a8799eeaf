"""The stack's parts run as containers of the project's own images through testcontainers, on
Podman's Docker-compatible service (machines like this one have no Docker): Redis from
`stormproof.local/redis`, the staging venue from the app image, each on loopback. Unmodified
redis-py and ccxt talk to them over real sockets; what the venue traded is read back from its
own control API.

Needs root, podman (`scripts/bootstrap.sh podman`) and the images of `stormproof image build`
(built here when missing or stale). `make test-containers` runs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.containers.parts import redis_part, venue_part
from harness.containers.podman import PodmanService, is_mount_point, podman_service
from harness.image.build import build_images
from harness.ports import free_ports
from tests.helpers import (
    SIM_KEY,
    SIM_SECRET,
    SIM_TOKEN,
    ReplayProcess,
    control,
    http_ok,
    sim_exchange,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.containers]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanService]:
    with podman_service(tmp_path_factory.mktemp("podman")) as service:
        yield service


@pytest.fixture(scope="module")
def refs(podman: PodmanService) -> dict[str, str]:
    """The images, built where missing or stale, loaded into this Podman."""
    built = build_images(only=["redis", "stormproof"])
    return {image.name: podman.load(image.archive, image.ref) for image in built}


def test_redis_from_our_image_is_the_bus_for_redis_py(
    podman: PodmanService, refs: dict[str, str]
) -> None:
    (port,) = free_ports(1)
    with redis_part(refs["redis"], docker_host=podman.docker_host, port=port) as part:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        wait_until(lambda: _pings(client), timeout_s=30, what="Redis in its container")
        entry = client.xadd("intents", {"m": b"hello"})
        [(stream, [(read_id, fields)])] = client.xread({"intents": "0-0"})
        assert (stream, read_id, fields) == (b"intents", entry, {b"m": b"hello"})
        # it is the container's server: its process runs as the image's redis user
        assert part.get_wrapped_container().attrs["Config"]["User"] == "10002:10002"
    client.close()


@pytest.fixture
async def venue(
    podman: PodmanService, refs: dict[str, str], synth_recording: Path
) -> AsyncIterator[tuple[Any, ReplayProcess]]:
    ws, rest, control = free_ports(3)
    part = venue_part(
        refs["stormproof"],
        docker_host=podman.docker_host,
        recording=synth_recording,
        ws_port=ws,
        rest_port=rest,
        control_port=control,
        env={
            "STORMPROOF_SIM_API_KEY": SIM_KEY,
            "STORMPROOF_SIM_API_SECRET": SIM_SECRET,
            "STORMPROOF_SIM_CONTROL_TOKEN": SIM_TOKEN,
        },
    )
    with part:
        sim = ReplayProcess(ws, rest, control, 0)  # pid 0: the process is the container's
        wait_until(
            lambda: http_ok(f"{sim.control_url}/readyz"),
            timeout_s=60,
            what="the venue in its container to know every book",
        )
        exchange = sim_exchange(sim.rest_url)
        try:
            yield exchange, sim
        finally:
            await exchange.close()


async def test_the_venue_from_the_app_image_trades_with_unmodified_ccxt(
    venue: tuple[Any, ReplayProcess],
) -> None:
    exchange, sim = venue
    await exchange.load_markets()
    book = await exchange.fetch_order_book("BTC/USDT", 10)
    assert book["bids"] and book["asks"] and book["bids"][0][0] < book["asks"][0][0]
    order = await exchange.create_order(
        "BTC/USDT", "market", "buy", 0.001, None, {"newClientOrderId": "containers-1"}
    )
    assert order["status"] == "closed" and order["filled"] == pytest.approx(0.001)
    # the simulator's own record, through its control API
    truth = control(sim, "GET", "/truth/orders?client_order_id=containers-1")
    assert [o["client_order_id"] for o in truth["orders"]] == ["containers-1"]


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_the_service_leaves_no_mount_behind(tmp_path: Path) -> None:
    with podman_service(tmp_path / "podman") as service:
        # running a container sets containers/storage's overlay directory up (a bind mount)
        (redis_image,) = build_images(only=["redis"])
        service.load(redis_image.archive, redis_image.ref)
        (port,) = free_ports(1)
        with redis_part(redis_image.ref, docker_host=service.docker_host, port=port):
            pass
        assert is_mount_point(service.state_dir / "storage" / "overlay")  # what is undone
    assert not is_mount_point(tmp_path / "podman" / "storage" / "overlay")
