"""Types of the compiled accepting path of signed requests (replay/exchange/_signed.c)."""

from decimal import Decimal
from typing import Any

def signed_params(query: str, body: str, /) -> tuple[str, str | None, dict[str, str]] | None: ...
def accept(query: str, body: str, keyed: Any, now_ms: int, /) -> dict[str, str] | None: ...
def order_args(
    params: dict[str, str], symbols: dict[str, Any], decimal: type[Decimal], /
) -> dict[str, Any] | None: ...
