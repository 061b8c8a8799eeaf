"""A FAKE Kubernetes API server that serves Lease objects only, for tests.

There is no Kubernetes cluster on this machine, so this stands in for one: an aiohttp server on
127.0.0.1 implementing the few coordination.k8s.io/v1 endpoints a leader election uses, with the
API server's rules that matter to it:

    GET    /apis/coordination.k8s.io/v1/namespaces/{ns}/leases          list
    POST   /apis/coordination.k8s.io/v1/namespaces/{ns}/leases          create (409 AlreadyExists)
    GET    /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}   read   (404 NotFound)
    PUT    /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}   replace: 409 Conflict
           when metadata.resourceVersion is not the stored one, 404 when absent
    DELETE /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}

Errors are `Status` objects as the API server returns them. MicroTime fields (acquireTime,
renewTime) must have exactly six fractional digits, as the real server's parser requires.
Nothing else of Kubernetes is here (no auth, watches, field managers, PATCH or admission).

The real `kubernetes` client talks to it unmodified (`api_client(url)`); the server runs on its
own event loop in a thread, so synchronous test code and clients in worker threads both reach it.
Faults for tests: `stop()`/`start()` (unreachable, then back on the same port with the same
objects), `hang()`/`unhang()` (requests block: a hung API server).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

PREFIX = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
_MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


class FakeKubeApi:
    """A fake API server for Lease objects (see the module docstring). Not a cluster."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.port = 0
        self._versions = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-kube-api")
        self._runner: web.AppRunner | None = None
        self._released: asyncio.Event | None = None
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- control, from any thread ----------------------------------------------------------

    def _do(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> None:
        self._do(self._start())

    def stop(self) -> None:
        """Close the listener and every connection: clients get connection refused."""
        self._do(self._stop())

    def hang(self) -> None:
        """From now on requests are accepted and never answered, until `unhang()`."""

        async def set_hang() -> None:
            self._released = asyncio.Event()

        self._do(set_hang())

    def unhang(self) -> None:
        async def release() -> None:
            if self._released is not None:
                self._released.set()
                self._released = None

        self._do(release())

    def close(self) -> None:
        self.unhang()
        self._do(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        async def read() -> dict[str, Any] | None:
            obj = self.objects.get((namespace, name))
            return None if obj is None else json.loads(json.dumps(obj))

        result: dict[str, Any] | None = self._do(read())
        return result

    def put_spec(self, namespace: str, name: str, **spec: Any) -> None:
        """Change a stored lease behind the clients' backs (as kubectl or another actor would)."""

        async def write() -> None:
            obj = self.objects[(namespace, name)]
            obj["spec"].update(spec)
            obj["metadata"]["resourceVersion"] = str(next(self._versions))

        self._do(write())

    # ---- the server --------------------------------------------------------------------------

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        base = PREFIX.replace("{ns}", "{namespace}")
        app.router.add_get(base, self._list)
        app.router.add_post(base, self._create)
        app.router.add_get(base + "/{name}", self._read)
        app.router.add_put(base + "/{name}", self._replace)
        app.router.add_delete(base + "/{name}", self._delete)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            server: Any = site._server
            self.port = server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._released is not None:
            await self._released.wait()
        response: web.StreamResponse = await handler(request)
        self.requests.append((request.method, request.path, response.status))
        return response

    def _stamp(self, obj: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
        obj["apiVersion"] = "coordination.k8s.io/v1"
        obj["kind"] = "Lease"
        meta = obj.setdefault("metadata", {})
        meta["name"] = name
        meta["namespace"] = namespace
        meta["resourceVersion"] = str(next(self._versions))
        obj.setdefault("spec", {})
        return obj

    @staticmethod
    def _invalid(obj: dict[str, Any]) -> str | None:
        spec = obj.get("spec") or {}
        for field in ("acquireTime", "renewTime"):
            value = spec.get(field)
            if value is not None and not (isinstance(value, str) and _MICRO_TIME.match(value)):
                return f"spec.{field}: Invalid value: {value!r}: not an RFC3339 MicroTime"
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and (not isinstance(duration, int) or duration <= 0):
            return "spec.leaseDurationSeconds: Invalid value: must be greater than 0"
        transitions = spec.get("leaseTransitions")
        if transitions is not None and (not isinstance(transitions, int) or transitions < 0):
            return "spec.leaseTransitions: Invalid value: must be greater than or equal to 0"
        return None

    async def _list(self, request: web.Request) -> web.Response:
        namespace = request.match_info["namespace"]
        items = [obj for (ns, _), obj in self.objects.items() if ns == namespace]
        return web.json_response(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "LeaseList",
                "metadata": {"resourceVersion": str(next(self._versions))},
                "items": items,
            }
        )

    async def _read(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        obj = self.objects.get((namespace, name))
        if obj is None:
            return _status(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
        return web.json_response(obj)

    async def _create(self, request: web.Request) -> web.Response:
        namespace = request.match_info["namespace"]
        obj = await request.json()
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return _status(422, "Invalid", "metadata.name: Required value")
        if (obj.get("metadata") or {}).get("resourceVersion"):
            return _status(
                500, "InternalError", "resourceVersion should not be set on objects to be created"
            )
        if (problem := self._invalid(obj)) is not None:
            return _status(422, "Invalid", problem)
        if (namespace, name) in self.objects:
            return _status(
                409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" already exists'
            )
        obj = self._stamp(obj, namespace, name)
        obj["metadata"]["uid"] = str(uuid.uuid4())
        obj["metadata"]["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.objects[(namespace, name)] = obj
        return web.json_response(obj, status=201)

    async def _replace(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        obj = await request.json()
        meta = obj.get("metadata") or {}
        if meta.get("name") != name:
            return _status(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        stored = self.objects.get((namespace, name))
        if stored is None:
            return _status(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
        if (problem := self._invalid(obj)) is not None:
            return _status(422, "Invalid", problem)
        version = meta.get("resourceVersion")
        if version and version != stored["metadata"]["resourceVersion"]:
            return _status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": the '
                "object has been modified; please apply your changes to the latest version and "
                "try again",
            )
        obj = self._stamp(obj, namespace, name)
        obj["metadata"]["uid"] = stored["metadata"].get("uid")
        obj["metadata"]["creationTimestamp"] = stored["metadata"].get("creationTimestamp")
        self.objects[(namespace, name)] = obj
        return web.json_response(obj)

    async def _delete(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if self.objects.pop((namespace, name), None) is None:
            return _status(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}
        )


@contextmanager
def fake_kube_api() -> Iterator[FakeKubeApi]:
    """A running FakeKubeApi on a free loopback port; closed on exit."""
    api = FakeKubeApi()
    try:
        api.start()
        yield api
    finally:
        api.close()


def api_client(url: str) -> Any:
    """The real `kubernetes` ApiClient, configured for the fake at `url` (no auth, no TLS)."""
    from kubernetes import client

    configuration = client.Configuration(host=url)
    configuration.retries = 0  # a stopped fake is a failed call, not three
    return client.ApiClient(configuration)
