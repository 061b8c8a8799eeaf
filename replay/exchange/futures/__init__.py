"""The simulator's perpetual futures: USD-M (linear) and COIN-M (inverse) margin, positions,
funding and liquidation (docs/futures.md).

- `contract`: the arithmetic of one contract (notional, PnL, entry averaging, liquidation and
  bankruptcy prices, funding fee), linear or inverse; pure.
- `ledger`: accounts, positions and settings; the margin check of an order, a fill's
  settlement, funding and liquidation; pure, fed by the matching engine and the replay loop.
- `engine`: the matching engine with the ledger in place of spot balances.
- `api`: Binance's futures REST (`/fapi`, `/dapi`) on the simulator's HTTP server.
"""
