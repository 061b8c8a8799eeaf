"""Types of the compiled accepting path of signed requests (replay/exchange/_signed.c)."""

from decimal import Decimal
from typing import Any

from typing_extensions import Buffer

class Key:
    """An HMAC-SHA256 key with its states prepared."""

    def __init__(self, secret: bytes, /) -> None: ...
    def mac(self, message: Buffer, /) -> bytes: ...

def signed_params(query: str, body: str, /) -> tuple[str, str | None, dict[str, str]] | None: ...
def accept(query: str, body: str, key: Key, now_ms: int, /) -> dict[str, str] | None: ...
def order_args(
    params: dict[str, str], symbols: dict[str, Any], decimal: type[Decimal], /
) -> dict[str, Any] | None: ...
