"""The futures user data stream: `ORDER_TRADE_UPDATE` for every order event and `ACCOUNT_UPDATE`
after a fill, a funding fee or a liquidation, in Binance's USD-M / COIN-M formats, through the
spot hub's subscribers, listen keys and faults."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from replay.exchange.formats import fmt
from replay.exchange.futures.engine import FuturesMatchingEngine
from replay.exchange.futures.formats import order_json
from replay.exchange.matching import SimFill, SimOrder
from replay.exchange.userdata import UserDataHub

__all__ = ["FuturesUserDataHub", "order_trade_update"]


def order_trade_update(
    order: SimOrder, execution_type: str, fill: SimFill | None, average: str, now_ms: int
) -> dict[str, Any]:
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": now_ms,
        "T": fill.time_ms if fill else order.update_ms,
        "o": {
            "s": order.symbol,
            "c": order.client_order_id,
            "S": order.side,
            "o": order.type,
            "f": order.time_in_force or "GTC",
            "q": fmt(order.orig_qty),
            "p": fmt(order.price),
            "ap": average,
            "sp": "0",
            "x": execution_type,
            "X": order.status.value,
            "i": order.order_id,
            "l": fmt(fill.qty) if fill else "0",
            "z": fmt(order.executed_qty),
            "L": fmt(fill.price) if fill else "0",
            "N": fill.commission_asset if fill else None,
            "n": fmt(fill.commission) if fill else "0",
            "T": fill.time_ms if fill else order.update_ms,
            "t": fill.trade_id if fill else 0,
            "b": "0",
            "a": "0",
            "m": fill.is_maker if fill else False,
            "R": order.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": order.type,
            "ps": order.position_side or "BOTH",
            "cp": False,
            "rp": fmt(fill.realized_pnl) if fill else "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "NONE",
            "pm": "NONE",
            "gtd": 0,
        },
    }


class FuturesUserDataHub(UserDataHub):
    matching: FuturesMatchingEngine

    def __post_init__(self) -> None:
        super().__post_init__()
        self.matching.account_listeners.append(self._on_account_event)

    def _on_order_event(self, order: SimOrder, execution_type: str, fill: SimFill | None) -> None:
        if self.paused or not any(s.api_key == order.api_key for s in self._subscribers.values()):
            return
        now_ms = time.time_ns() // 1_000_000
        contract = self.matching.ledger.contracts[order.symbol]
        average = order_json(order, contract)["avgPrice"]
        self._publish(
            order.api_key, order_trade_update(order, execution_type, fill, average, now_ms)
        )
        if fill is not None:
            self._publish(
                order.api_key, self._account_update(order.api_key, "ORDER", [order.symbol], now_ms)
            )

    def _on_account_event(self, api_key: str, reason: str, symbols: list[str]) -> None:
        if self.paused or not any(s.api_key == api_key for s in self._subscribers.values()):
            return
        now_ms = time.time_ns() // 1_000_000
        self._publish(api_key, self._account_update(api_key, reason, symbols, now_ms))

    def _account_update(
        self, api_key: str, reason: str, symbols: list[str], now_ms: int
    ) -> dict[str, Any]:
        ledger = self.matching.ledger
        account = ledger.accounts[api_key]
        assets = sorted({ledger.margin_assets[s] for s in symbols})
        positions = []
        for position in account.positions.values():
            if position.symbol not in symbols:
                continue
            isolated = position.symbol in account.isolated
            positions.append(
                {
                    "s": position.symbol,
                    "pa": fmt(position.qty),
                    "ep": fmt(position.entry),
                    "bep": fmt(position.entry),
                    "cr": fmt(position.realized_pnl),
                    "up": fmt(ledger.unrealized(position)),
                    "mt": "isolated" if isolated else "cross",
                    "iw": fmt(position.isolated_margin if isolated else Decimal(0)),
                    "ps": position.side,
                }
            )
        balances = [
            {
                "a": asset,
                "wb": fmt(account.wallet.get(asset, Decimal(0))),
                "cw": fmt(account.wallet.get(asset, Decimal(0))),
                "bc": "0",
            }
            for asset in assets
        ]
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now_ms,
            "T": now_ms,
            "a": {"m": reason, "B": balances, "P": positions},
        }
