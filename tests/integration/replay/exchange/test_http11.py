"""The simulator's HTTP/1.1 server on real loopback sockets: keep-alive, pipelining in order,
clear refusals for what it does not serve, and a handler bug answered with a 500, not a hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import pytest

from replay.exchange.http11 import MAX_PIPELINED, HttpRequest, HttpServer, Reply, serve

pytestmark = pytest.mark.integration
GATE = asyncio.Event()  # holds /hold requests until a test opens it
HANDLED: list[str] = []  # handler starts and ends, in the order they happened


def echo(request: HttpRequest) -> Reply | Awaitable[Reply]:
    """Answers at once, except /hold and /slow (they wait) and /boom-later (a bug after a wait)."""
    if request.path == "/boom":
        raise RuntimeError("a handler bug")
    if request.path in ("/hold", "/slow", "/boom-later"):
        return echo_later(request)
    if request.path == "/unencodable":  # a header value outside latin-1: a bug in a handler
        return Reply(b"x", content_type="text/\u2603")
    HANDLED.append(f"start {request.path}")
    HANDLED.append(f"end {request.path}")
    return echo_reply(request)


async def echo_later(request: HttpRequest) -> Reply:
    if request.path == "/hold":
        await GATE.wait()
    HANDLED.append(f"start {request.path}")
    await asyncio.sleep(0)  # yield: a server that did not keep order would start the next
    if request.path == "/boom-later":
        raise RuntimeError("a handler bug after a wait")
    HANDLED.append(f"end {request.path}")
    return echo_reply(request)


def echo_reply(request: HttpRequest) -> Reply:
    key = request.headers.get("x-mbx-apikey") or "-"
    text = (
        f"{request.method} {request.path} q={request.query.get('a', '')} key={key} "
        f"body={request.body!r}"
    )
    return Reply(text.encode(), content_type="text/plain", headers={"X-Seen": request.path})


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    running = await serve(echo, "127.0.0.1", 0)
    yield running
    await running.close()


async def exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    return data


def responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        out.append((int(lines[0].split(" ")[1]), headers, rest[:length]))
        data = rest[length:]
    return out


async def test_pipelined_requests_are_answered_in_order_on_one_connection(
    server: HttpServer,
) -> None:
    raw = (
        b"GET /slow?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /order HTTP/1.1\r\nHost: x\r\nX-MBX-APIKEY: k1\r\nContent-Length: 5\r\n\r\nq=1&b"
        b"DELETE /order?a=%20z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    HANDLED.clear()
    answers = responses(await exchange(server.port, raw))
    # one request at a time: each handler ends before the next starts
    assert HANDLED == [
        "start /slow",
        "end /slow",
        "start /order",
        "end /order",
        "start /order",
        "end /order",
    ]
    assert [(status, body) for status, _, body in answers] == [
        (200, b"GET /slow q=1 key=- body=b''"),
        (200, b"POST /order q= key=k1 body=b'q=1&b'"),
        (200, b"DELETE /order q= z key=- body=b''"),
    ]
    assert answers[0][1]["x-seen"] == "/slow"
    assert answers[-1][1]["connection"] == "close"


async def test_a_request_split_across_many_writes_is_reassembled(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    raw = b"PUT /k HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    for i in range(len(raw)):
        writer.write(raw[i : i + 1])
        await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert responses(data) == [
        (200, responses(data)[0][1], b"PUT /k q= key=- body=b'abc'"),
    ]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", 400),  # "²".isdigit()
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    ],
)
async def test_what_it_does_not_serve_gets_a_clear_status_and_the_connection_closes(
    server: HttpServer, raw: bytes, status: int
) -> None:
    answers = responses(await exchange(server.port, raw))
    assert len(answers) == 1
    assert answers[0][0] == status
    assert answers[0][1]["connection"] == "close"
    assert answers[0][2], "the refusal says why"


async def test_a_handler_bug_is_a_500_and_the_connection_keeps_serving(
    server: HttpServer,
) -> None:
    raw = b"GET /boom HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\nConnection: close\r\n\r\n"
    answers = responses(await exchange(server.port, raw))
    assert [status for status, _, _ in answers] == [500, 200]
    assert b'"code":-1000' in answers[0][2]


async def test_answers_ready_at_once_and_answers_that_wait_keep_their_order(
    server: HttpServer,
) -> None:
    raw = (
        b"GET /now1 HTTP/1.1\r\n\r\n"
        b"GET /slow HTTP/1.1\r\n\r\n"
        b"GET /now2 HTTP/1.1\r\n\r\n"
        b"GET /boom HTTP/1.1\r\n\r\n"
        b"GET /boom-later HTTP/1.1\r\n\r\n"
        b"GET /now3 HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    HANDLED.clear()
    answers = responses(await exchange(server.port, raw))
    assert [(status, headers.get("x-seen")) for status, headers, _ in answers] == [
        (200, "/now1"),
        (200, "/slow"),
        (200, "/now2"),
        (500, None),
        (500, None),
        (200, "/now3"),
    ]
    assert [entry for entry in HANDLED if entry.startswith("start")] == [
        "start /now1",
        "start /slow",
        "start /now2",
        "start /boom-later",
        "start /now3",
    ]


async def test_a_request_answered_at_once_needs_no_task(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /now HTTP/1.1\r\n\r\n")
    answer = await asyncio.wait_for(reader.readuntil(b"GET /now q="), timeout=5)
    connection = next(iter(server.connections))
    assert answer.startswith(b"HTTP/1.1 200")
    assert connection._worker is None, "written from the read callback, without a worker task"
    writer.write(b"GET /slow HTTP/1.1\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"GET /slow q="), timeout=5)
    assert connection._worker is not None, "an answer that waits gets the worker"
    writer.close()


async def test_a_refused_request_still_lets_the_ones_before_it_be_answered(
    server: HttpServer,
) -> None:
    raw = b"GET /first HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n"
    answers = responses(await exchange(server.port, raw))
    assert [status for status, _, _ in answers] == [200, 400]
    assert answers[0][1]["x-seen"] == "/first"


async def test_a_reply_that_cannot_be_encoded_is_a_500_and_the_connection_keeps_serving(
    server: HttpServer,
) -> None:
    raw = b"GET /unencodable HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\nConnection: close\r\n\r\n"
    answers = responses(await exchange(server.port, raw))
    assert [status for status, _, _ in answers] == [500, 200]


async def test_http_1_0_closes_unless_asked_to_keep_alive(server: HttpServer) -> None:
    answers = responses(await exchange(server.port, b"GET /a HTTP/1.0\r\n\r\n"))
    assert answers[0][0] == 200 and answers[0][1]["connection"] == "close"


async def test_close_ends_open_keep_alive_connections(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /a HTTP/1.1\r\n\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b"body=b''"), timeout=5)
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert len(server.connections) == 1
    await server.close()
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    writer.close()


async def test_a_client_that_pipelines_without_reading_holds_a_bounded_backlog(
    server: HttpServer,
) -> None:
    global GATE
    GATE = asyncio.Event()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    request = b"GET /hold HTTP/1.1\r\n\r\n"
    count = 5_000
    writer.write(request * count)  # far more than MAX_PIPELINED, while the handler is held
    await writer.drain()
    connection = next(iter(server.connections))
    # the server stops reading once the backlog is full (a protocol flag: there is no event to
    # wait on, so the loop yields until the bytes already sent have been framed)
    deadline = asyncio.get_running_loop().time() + 5
    while not connection._reading_paused:
        assert asyncio.get_running_loop().time() < deadline, "never stopped reading"
        await asyncio.sleep(0)
    # filled to the bound; the first request may already be in the held handler's hands
    assert MAX_PIPELINED - 1 <= len(connection._pending) <= MAX_PIPELINED
    assert len(connection._buffer) < len(request) * count, "the rest waits in the kernel"
    GATE.set()
    replies = b""
    while replies.count(b"HTTP/1.1 200") < count:
        replies += await asyncio.wait_for(reader.read(65536), timeout=5)
    writer.close()
    assert replies.count(b"HTTP/1.1 200") == count, "every request answered once"
