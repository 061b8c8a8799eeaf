"""`StackClient`: what a running stack answers over HTTP, read from its run directory
(`harness.runfile`): each engine service's readiness, /status and /metrics, and the simulator's
control API and ground truth. Chaos probes, the game-day sampler and watcher, the truth
collector and the load runner all look at a stack through it.

Every call is bounded by a timeout and never raises for a server that does not answer: `http`
returns status 0, `status` and `metrics` None, `ready` False. Callers decide what silence means.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

from harness.runfile import Endpoints, RunDir

__all__ = ["StackClient", "http", "sample_sum"]


def http(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: object = None,
    timeout_s: float = 5.0,
) -> tuple[int, Any]:
    """(status, parsed JSON body or None); status 0 when nothing answered."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
            return int(response.status), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return error.code, raw.decode("utf-8", "replace")[:300]
    except OSError:
        return 0, None


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def sample_sum(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The sum of the Prometheus samples called `name` whose labels include `labels`; None if
    none."""
    wanted = labels or {}
    total, found = 0.0, False
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(sample_labels.get(k) == v for k, v in wanted.items()):
            total += float(match.group(3))
            found = True
    return total if found else None


class StackClient:
    """HTTP to one running stack: its engine services' ops servers and the replay's control
    API. Ports and tokens are read once, when the client is made."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints

    @classmethod
    def of(cls, run_dir: RunDir) -> StackClient:
        return cls(Endpoints.read(run_dir))

    @property
    def run_dir(self) -> RunDir:
        return self.endpoints.run_dir

    def services(self) -> list[str]:
        """Every engine service with an ops port."""
        return self.endpoints.ops_services()

    def executions(self) -> list[str]:
        """The execution instances: execution, and execution-b with a standby."""
        return [s for s in self.services() if s.startswith("execution")]

    def has_service(self, service: str) -> bool:
        return self.endpoints.has_service(service)

    # --- engine services ----------------------------------------------------------------------

    def ops(
        self, method: str, service: str, path: str, *, body: object = None, timeout_s: float = 5.0
    ) -> tuple[int, Any]:
        """A call to the service's ops server with the ops token."""
        token = self.endpoints.secrets.get("STORMPROOF_OPS_TOKEN")
        url = f"{self.endpoints.ops_url(service)}{path}"
        return http(method, url, token=token, body=body, timeout_s=timeout_s)

    def ready(self, service: str, *, timeout_s: float = 2.0) -> bool:
        """The service's /readyz answers 200."""
        url = f"{self.endpoints.ops_url(service)}/readyz"
        return http("GET", url, timeout_s=timeout_s)[0] == 200

    def all_ready(self, *, timeout_s: float = 2.0) -> bool:
        """Every engine service answers /readyz with 200."""
        return all(self.ready(s, timeout_s=timeout_s) for s in self.services())

    def readiness(self, *, timeout_s: float = 2.0) -> dict[str, bool]:
        return {s: self.ready(s, timeout_s=timeout_s) for s in self.services()}

    def status(self, service: str, *, timeout_s: float = 2.0) -> dict[str, Any] | None:
        """The service's /status, None when it does not answer 200 with an object."""
        url = f"{self.endpoints.ops_url(service)}/status"
        code, body = http("GET", url, timeout_s=timeout_s)
        return body if code == 200 and isinstance(body, dict) else None

    def metrics(self, service: str, *, timeout_s: float = 2.0) -> str | None:
        """The Prometheus text of the service's /metrics, None when it does not answer."""
        try:
            url = f"{self.endpoints.ops_url(service)}/metrics"
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return str(response.read().decode())
        except OSError:
            return None

    def roles(self, *, timeout_s: float = 2.0) -> dict[str, str | None]:
        """Each execution instance -> the role its /status reports ("leader" or "standby"), None
        when it does not answer."""
        roles: dict[str, str | None] = {}
        for service in self.executions():
            status = self.status(service, timeout_s=timeout_s)
            roles[service] = None if status is None else status.get("role")
        return roles

    @staticmethod
    def freshest_data_age_ms(
        feed_status: dict[str, Any], *, symbol: str | None = None, connected_only: bool = False
    ) -> float | None:
        """The age of the freshest market data in the feed service's /status, over its feeds
        (`connected_only`: those connected now) and symbols (or the one `symbol`); None when it
        has none."""
        ages = [
            age
            for feed in feed_status.get("feeds", {}).values()
            if not connected_only or feed.get("connected")
            for name, age in feed.get("data_age_ms", {}).items()
            if age is not None and (symbol is None or name == symbol)
        ]
        return min(ages) if ages else None

    # --- the simulator ------------------------------------------------------------------------

    def control(
        self, method: str, path: str, *, body: object = None, timeout_s: float = 5.0
    ) -> tuple[int, Any]:
        """A call to the replay's control API (the simulator's ground truth under /truth)."""
        url = f"{self.endpoints.control_url}{path}"
        return http(method, url, token=self.endpoints.control_token, body=body, timeout_s=timeout_s)

    def truth(self, path: str, *, timeout_s: float = 5.0) -> tuple[int, Any]:
        """GET on the control API: `truth("/truth/orders")`."""
        return self.control("GET", path, timeout_s=timeout_s)
