"""The simulator's request head parser: the compiled one (replay/exchange/_http_head.c) gives
what the Python definition (http11.parse_head_py) gives, and leaves to it only what it must."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from replay.exchange import _http_head
from replay.exchange.http11 import BadRequest, parse_head, parse_head_py

_NAME = st.text(alphabet='ACcoknet-XMBAPIY :\t\x1c\x7f\x00é"(!~', min_size=0, max_size=12)
_VALUE = st.one_of(
    st.sampled_from(["close", "Keep-Alive", "keep-alive, Upgrade", "CLOSE", "", " 5 "]),
    st.text(alphabet="abcl oseKP-:\t\x0b\x1f\r\n%?é", max_size=16),
)
_HEADER = st.builds(
    lambda name, sep, value: f"{name}{sep}{value}",
    st.one_of(
        st.sampled_from(
            ["Host", "Connection", "connection", "X-MBX-APIKEY", "Content-Length", "host"]
        ),
        _NAME,
    ),
    st.sampled_from([":", ": ", " :", ":\t", ""]),
    _VALUE,
)
_REQUEST_LINE = st.builds(
    lambda method, target, version, spaces: spaces.join([method, target, version]),
    st.one_of(st.sampled_from(["GET", "post", "DELETE", "PuT"]), st.text("GEToé3 ", max_size=5)),
    st.one_of(
        st.sampled_from(["/api/v3/order", "/api/v3/ping?", "/a?b=%20c", "/%7e"]),
        st.text(alphabet="/ab?=&%2 é", max_size=12),
    ),
    st.one_of(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]), st.text("HTP/1.02 ", max_size=9)),
    st.sampled_from([" ", " ", " ", "  ", "\t"]),
)
_HEAD = st.builds(
    lambda line, headers, tail: "\r\n".join([line, *headers]) + tail,
    _REQUEST_LINE,
    st.lists(_HEADER, max_size=5),
    st.sampled_from(["", "", "", "\r\n", "\r", "\n"]),
).map(lambda text: text.encode("latin-1", "replace"))


def _python(head: bytes) -> tuple[Any, ...]:
    try:
        method, path, query, headers, keep_alive = parse_head_py(head)
    except BadRequest as exc:
        return ("refused", exc.status, exc.message)
    return ("parsed", method, path, query, headers.items(), keep_alive)


def _plainly_parseable(head: bytes, reference: tuple[Any, ...]) -> bool:
    """What the compiled parser must take on: a head the definition accepts, in ASCII, with no
    percent-encoded path."""
    if reference[0] != "parsed" or not head.isascii():
        return False
    lines = head.split(b"\r\n")
    names = [line.partition(b":")[0].lower() for line in lines[1:]]
    if len(set(names)) != len(names):  # a repeated header: the definition judges it
        return False
    raw_path = lines[0].split(b" ")[1].partition(b"?")[0]
    return b"%" not in raw_path


@settings(max_examples=3000)
@given(st.one_of(_HEAD, st.binary(max_size=60)))
def test_compiled_head_parser_is_the_python_definition(head: bytes) -> None:
    reference = _python(head)
    compiled = _http_head.parse(head)
    if compiled is None:
        assert not _plainly_parseable(head, reference), "declined a head it should parse"
        return
    method, path, query, by_name, keep_alive = compiled
    assert ("parsed", method, path, query, list(by_name.items()), keep_alive) == reference


def test_requests_as_clients_send_them_are_parsed_in_c() -> None:
    heads = [
        b"GET /api/v3/ping HTTP/1.1\r\nHost: 127.0.0.1:9\r\nUser-Agent: python-requests/2.32"
        b"\r\nAccept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive",
        b"POST /api/v3/order HTTP/1.1\r\nHost: 127.0.0.1\r\nX-MBX-APIKEY: k\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 180",
        b"DELETE /api/v3/order?symbol=BTCUSDT&origClientOrderId=x&timestamp=1&signature=ab "
        b"HTTP/1.1\r\nHost: 127.0.0.1\r\nX-MBX-APIKEY: k",
    ]
    for head in heads:
        assert _http_head.parse(head) is not None
        method, path, query, headers, keep_alive = parse_head(head)
        assert (method, path, query, headers.items(), keep_alive) == _python(head)[1:]


def test_what_the_compiled_parser_declines_is_still_answered_by_the_definition() -> None:
    assert _http_head.parse(b"GET /caf\xe9 HTTP/1.1") is None
    assert parse_head(b"GET /caf\xe9 HTTP/1.1")[1] == "/caf\xe9"
    assert _http_head.parse(b"GET /a%20b HTTP/1.1") is None
    assert parse_head(b"GET /a%20b HTTP/1.1")[1] == "/a b"
    for refused, status in [(b"GET / HTTP/2.0", 505), (b"GET /\r\nbad", 400)]:
        assert _http_head.parse(refused) is None
        assert _python(refused)[:2] == ("refused", status)
