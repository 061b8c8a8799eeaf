"""ccxt clients for the venues we trade. Only URLs and options are changed: the real ccxt code
path (signing, parsing, error mapping) is what runs, against the real venue or our simulator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ccxt.async_support as ccxt

from engine.config import Secrets, VenueConfig

ResponseObserver = Callable[[int, Mapping[str, str]], None]
"""Called with (HTTP status, response headers) for every HTTP response the client receives."""

_SPOT_API_KEYS = ("public", "private", "v1", "v3")


def binance_api_urls(rest_url: str) -> dict[str, str]:
    base = rest_url.rstrip("/")
    urls = {key: f"{base}/api/v3" for key in ("public", "private", "v3")}
    urls["v1"] = f"{base}/api/v1"
    for key in ("sapi", "sapiV2", "sapiV3", "sapiV4"):
        urls[key] = f"{base}/sapi/{key[-2:].lower() if key != 'sapi' else 'v1'}"
    return urls


CCXT_BINANCE_WEIGHT_PER_COST = 5
"""ccxt prices Binance endpoints in cost units of 5 request weight (a weight-1 call costs 0.2)."""


def ccxt_rate_limit_ms(venue: VenueConfig) -> float:
    """ccxt's `rateLimit` (ms per cost unit) that keeps us at max_weight_usage of the venue's
    weight budget: 6000 weight/min at 70% gives 71.4 ms per cost unit, 4200 weight/min.
    Used for a client made without `on_response` (no governor): ccxt's limiter is then on."""
    weight_per_ms = venue.request_weight_per_minute * venue.max_weight_usage / 60_000
    return CCXT_BINANCE_WEIGHT_PER_COST / weight_per_ms


class _Observed:
    """ccxt's Binance client, unchanged, except that every HTTP response is shown to
    `on_response` before ccxt maps it (to a result or an exception): ccxt calls `handle_errors`
    for every response it receives, success or not, with the status and the headers."""

    def __init__(self, config: dict[str, Any], on_response: ResponseObserver | None) -> None:
        super().__init__(config)  # type: ignore[call-arg]  # the ccxt class beside it in the MRO
        self._on_response = on_response

    def handle_errors(
        self,
        code: int,
        reason: str,
        url: str,
        method: str,
        headers: Mapping[str, str] | None,
        body: str,
        response: Any,
        requestHeaders: Any,
        requestBody: Any,
    ) -> Any:
        if self._on_response is not None and code is not None:
            self._on_response(code, headers or {})
        return super().handle_errors(  # type: ignore[misc]
            code, reason, url, method, headers, body, response, requestHeaders, requestBody
        )


class ObservedBinance(_Observed, ccxt.binance):  # type: ignore[misc]  # ccxt is untyped here
    """Spot."""


class ObservedBinanceUsdm(_Observed, ccxt.binanceusdm):  # type: ignore[misc]
    """USD-M futures (linear)."""


class ObservedBinanceCoinm(_Observed, ccxt.binancecoinm):  # type: ignore[misc]
    """COIN-M futures (inverse)."""


_FUTURES_CLIENTS = {"usdm": ObservedBinanceUsdm, "coinm": ObservedBinanceCoinm}
_FUTURES_MARKETS = {"usdm": "linear", "coinm": "inverse"}


def rehosted(urls: Mapping[str, Any], rest_url: str) -> dict[str, Any]:
    """ccxt's API URL table with every https URL moved to `rest_url`, paths kept
    (`https://fapi.binance.com/fapi/v2` -> `<rest_url>/fapi/v2`)."""
    base = rest_url.rstrip("/")
    out: dict[str, Any] = {}
    for key, url in urls.items():
        if isinstance(url, str) and url.startswith("https://"):
            out[key] = base + "/" + url.split("://", 1)[1].split("/", 1)[1]
        else:
            out[key] = url
    return out


def make_binance(
    venue: VenueConfig,
    secrets: Secrets,
    *,
    on_response: ResponseObserver | None = None,
    **options: Any,
) -> Any:
    """A ccxt binance client for `venue`. With `on_response` (our rate governor's `observe`),
    ccxt's own limiter is OFF: the governor is the only limiter, so its accounting of the
    venue's weight is the truth, and every response feeds it. Without it, ccxt's rolling-window
    limiter stays on (at max_weight_usage of the venue limit), so that no client is unlimited."""
    ccxt_limits: dict[str, Any] = (
        {"enableRateLimit": False}
        if on_response is not None
        else {
            # Binance counts request weight over a rolling minute; so does ccxt's rollingWindow
            # limiter, which allows bursts (a leaky bucket of capacity 1 would serialise every
            # request behind the previous one's weight, and orders would queue behind polls).
            "enableRateLimit": True,
            "rateLimiterAlgorithm": "rollingWindow",
            "rollingWindowSize": 60_000,
            "rateLimit": ccxt_rate_limit_ms(venue),
        }
    )
    common = {
        "fetchCurrencies": False,
        "fetchMargins": False,
        "adjustForTimeDifference": False,
        "recvWindow": venue.recv_window_ms,
        "warnOnFetchOpenOrdersWithoutSymbol": False,
    }
    config = {
        "apiKey": secrets.api_key.reveal(),
        "secret": secrets.api_secret.reveal(),
        **ccxt_limits,
        "timeout": venue.request_timeout_ms,
    }
    if venue.market != "spot":
        exchange: Any = _FUTURES_CLIENTS[venue.market](
            {
                **config,
                "options": {
                    "fetchMarkets": {"types": [_FUTURES_MARKETS[venue.market]]},
                    **common,
                    **options,
                },
            },
            on_response,
        )
        exchange.urls["api"] = rehosted(exchange.urls["api"], venue.rest_url)
        return exchange
    exchange = ObservedBinance(
        {
            **config,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                **common,
                **options,
            },
        },
        on_response,
    )
    exchange.urls["api"] = binance_api_urls(venue.rest_url)
    return exchange
