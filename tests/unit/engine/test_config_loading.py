"""Loading the engine's config: safe defaults, one clear line for a bad file, secrets from the
environment that never print (engine/config.py)."""

from pathlib import Path

import pytest

from engine.config import Secret, load_settings, parse_config
from engine.core.errors import ConfigError
from engine.strategy.registry import STRATEGY_PARAMS

pytestmark = pytest.mark.unit
MINIMAL = b"""
[venue]
ws_urls = ["ws://127.0.0.1:1"]
rest_url = "http://127.0.0.1:2"
symbols = ["BTCUSDT"]
"""


def test_minimal_config_gets_safe_defaults() -> None:
    config = parse_config(MINIMAL, strategy_params=STRATEGY_PARAMS)
    assert config.ops.host == "127.0.0.1"
    assert set(config.ops.ports) == {"feed", "strategy", "risk", "execution"}
    assert config.feed.stream_stale_after_ms["trade"] > config.feed.stale_after_ms


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (b"[venue\n", "not valid TOML"),
        (MINIMAL + b"unknown_key = 1\n", "venue.unknown_key: unknown field"),
        (
            MINIMAL + b"[risk]\nmax_position_qty = 'lots'\n",
            "risk.max_position_qty: must be a finite number >= 0",
        ),
        (
            b"[venue]\nws_urls=[]\nrest_url='x'\nsymbols=['A']\n",
            "venue.ws_urls: must be a non-empty list of ws:// or wss:// URLs, not []",
        ),
        (MINIMAL + b"[[strategies]]\nname='a.b'\n", "strategies[0].name: must be letters"),
    ],
)
def test_bad_config_is_one_clear_line(text: bytes, fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(text, strategy_params=STRATEGY_PARAMS)
    message = str(error.value)
    assert fragment in message
    assert "\n" not in message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", strategy_params=STRATEGY_PARAMS)


def test_secrets_come_from_env_and_never_print(tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_bytes(MINIMAL)
    settings = load_settings(
        path,
        env={"STORMPROOF_API_KEY": "k-123456", "STORMPROOF_API_SECRET": "s-abcdef"},
        strategy_params=STRATEGY_PARAMS,
    )
    assert settings.secrets.api_key.reveal() == "k-123456"
    assert "s-abcdef" not in repr(settings)
    assert "k-123456" not in str(settings.secrets)
    assert not settings.secrets.ops_token
    assert repr(Secret("x")) == "Secret('***')"
