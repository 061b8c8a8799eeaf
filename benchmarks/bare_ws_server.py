"""Baseline: a bare `websockets` server that sends pre-loaded messages as fast as it can.

It loads the combined-stream payloads of a recording into memory, waits until `--clients`
connections are open, then sends every message to each of them (one task per connection).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve

from replay.recording import read_records


async def run(messages: list[bytes], port: int, clients: int) -> None:
    connected: list[ServerConnection] = []
    all_in = asyncio.Event()
    done = asyncio.Event()
    finished = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal finished
        connected.append(ws)
        if len(connected) == clients:
            all_in.set()
        await all_in.wait()
        for message in messages:
            await ws.send(message, text=True)
        finished += 1
        if finished == clients:
            done.set()
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        await done.wait()
        await asyncio.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recording", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=1)
    args = parser.parse_args()
    messages = [
        r.payload for r in read_records(args.recording) if r.payload.startswith(b'{"stream"')
    ]
    asyncio.run(run(messages, args.port, args.clients))


if __name__ == "__main__":
    main()
