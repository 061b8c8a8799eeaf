"""The simulator's HTTP/1.1 connection (replay.exchange.http11.HttpProtocol) with llhttp, through
httptools (the parser uvicorn uses), framing and parsing requests in place of our own parser:
the candidate of benchmarks/http_parsers.py. Everything after framing (handlers, answers in
order, write flow control) is the server's own; refusals follow the same rules (a 400 and a
closed connection for what llhttp refuses, 411 for a chunked body, 413 past the body limit).

    python -m benchmarks.llhttp_protocol serve -r REC.gz ...   `replay serve` on llhttp

Benchmark code: the server runs our parser (docs/architecture.md says why).
"""

from __future__ import annotations

import sys
from typing import Any

import httptools

from replay.exchange import http11
from replay.exchange.http11 import BadRequest, Headers, HttpProtocol, HttpRequest


class LlhttpProtocol(HttpProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._by_name: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0

    # --- the connection ---------------------------------------------------------------------

    def buffer_updated(self, nbytes: int) -> None:
        if self._closing:
            return
        self.reads += 1
        try:
            self._parser.feed_data(self._read_view[:nbytes])
        except (httptools.HttpParserError, BadRequest) as exc:
            refusal = exc if isinstance(exc, BadRequest) else BadRequest(400, "malformed request")
            self._pending.append((refusal, False))
            self._closing = True
        if self._pending and not self._answering and (self._worker is None or self._worker.done()):
            self._answer_now()

    def _frame(self) -> None:
        """llhttp frames as bytes arrive (buffer_updated): nothing is left to frame here."""

    # --- llhttp's callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._by_name = {}
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        if key in self._by_name and key in ("content-length", "transfer-encoding", "host"):
            raise BadRequest(400, f"more than one {key} header")
        self._by_name[key] = value.decode("latin-1")
        self._size += len(name) + len(value) + 4
        if self._size > self._limits.max_head_bytes:
            raise BadRequest(431, "request head too large")

    def on_headers_complete(self) -> None:
        if "transfer-encoding" in self._by_name:
            raise BadRequest(411, "chunked bodies are not supported: send Content-Length")
        length = self._by_name.get("content-length", "0")
        if len(length) > 18 or int(length) > self._limits.max_body_bytes:
            raise BadRequest(413, "request body too large")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        target = self._url.decode("latin-1")
        path, _, query_string = target.partition("?")
        body = b"".join(self._body) if self._body else b""
        request = HttpRequest(
            parser.get_method().decode(),
            path,
            query_string,
            Headers(self._by_name),
            body,
            self._transport,
            self._remote,
        )
        request.size = self._size + len(body)
        self._pending.append((request, parser.should_keep_alive()))
        self.framed += 1


def main() -> None:
    """`replay ...` with every REST connection on llhttp."""
    http11.HttpProtocol = LlhttpProtocol  # type: ignore[misc]
    from replay.cli import main as replay_main

    sys.argv[0] = "replay"
    replay_main()


if __name__ == "__main__":
    main()
