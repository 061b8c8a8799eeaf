"""Execution gateway: write-ahead journal, venue access through ccxt, reconciliation."""
