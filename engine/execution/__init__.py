"""Execution gateway: write-ahead journal, venue access through ccxt, reconciliation.

Top to bottom (an import-linter `layers` contract in pyproject.toml keeps this order):

    assembly       build_execution: the service and its parts, from the configuration
    service        ExecutionService: leadership (engine.core.leadership), requests, control
    recovery       what a new leader does before it takes requests
    venue_session  the venue-bound parts, built as one when the venue answers
    parents        algo parent orders          user_stream  the push channel (ccxt.pro)
    desk           OrderDesk: journal, send, resolve, publish
    gateway        every REST call: rate-limit permit, error classes, retries
    venue_pacer    the rate limiter's asyncio shell      venue    the ccxt client
    errors         ccxt exceptions classified            journal  the write-ahead journal
    lease          the leader lease: backends and the elector
"""
