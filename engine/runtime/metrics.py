"""Prometheus metrics of the engine (names in the style of seed 003: trading_*)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.lifecycle_state = Gauge(
            "engine_service_running", "1 when the service is running", ["service"], registry=r
        )
        self.loop_lag = Gauge(
            "engine_event_loop_lag_seconds", "Event loop lag measured by the watchdog", registry=r
        )
        self.md_messages = Counter(
            "trading_market_data_messages_total",
            "Market data messages received",
            ["venue", "feed", "kind"],
            registry=r,
        )
        self.md_malformed = Counter(
            "trading_market_data_malformed_total",
            "Malformed or unexpected market data messages skipped",
            ["venue", "feed", "kind"],
            registry=r,
        )
        self.feed_reconnects = Counter(
            "trading_feed_reconnects_total", "Feed reconnections", ["venue", "feed"], registry=r
        )
        self.feed_switches = Counter(
            "trading_feed_switches_total",
            "Active feed switches",
            ["venue", "to", "reason"],
            registry=r,
        )
        self.feed_crashes = Counter(
            "trading_feed_crashes_total",
            "Feed connection tasks that failed and were restarted",
            ["venue", "feed"],
            registry=r,
        )
        self.feed_stale_reconnects = Counter(
            "trading_feed_stale_reconnects_total",
            "Reconnects because a stream that should be busy went silent",
            ["venue", "feed"],
            registry=r,
        )
        self.feed_lag = Gauge(
            "trading_feed_lag_ms",
            "How long after the first feed a feed delivers (smoothed)",
            ["venue", "feed"],
            registry=r,
        )
        self.feed_active = Gauge(
            "trading_feed_active", "1 for the active feed", ["venue", "feed"], registry=r
        )
        self.consumer_lag = Gauge(
            "trading_bus_consumer_lag",
            "Entries not yet delivered to a consumer group",
            ["stream", "group"],
            registry=r,
        )
        self.book_resyncs = Counter(
            "trading_book_resyncs_total",
            "Order book resynchronisations",
            ["venue", "symbol"],
            registry=r,
        )
        self.book_gaps = Counter(
            "trading_book_update_id_gaps_total",
            "Diff-depth update-id gaps",
            ["venue", "symbol"],
            registry=r,
        )
        self.bus_publish_latency = Histogram(
            "trading_bus_publish_latency_seconds",
            "Receive to acknowledged publish on the bus (per pipelined batch: its oldest message)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bus_degraded = Gauge(
            "trading_bus_degraded",
            "1 when the publisher cannot reach the bus",
            ["service"],
            registry=r,
        )
        self.intents = Counter(
            "trading_intents_total", "Intents emitted by strategies", ["strategy"], registry=r
        )
        self.intake_requests = Counter(
            "trading_intake_requests_total",
            "POST /intents requests by outcome (accepted, duplicate, conflict, invalid,"
            " unauthorized, unavailable)",
            ["outcome"],
            registry=r,
        )
        self.risk_denials = Counter(
            "trading_risk_denials_total", "Intents denied by risk", ["check"], registry=r
        )
        self.risk_approvals = Counter(
            "trading_risk_approvals_total", "Intents approved by risk", registry=r
        )
        self.trading_state = Gauge(
            "trading_state", "Trading state (1 for the current one)", ["state"], registry=r
        )
        self.orders_sent = Counter(
            "trading_orders_sent_total", "Orders sent to the venue", ["venue"], registry=r
        )
        self.order_results = Counter(
            "trading_order_results_total", "Order outcomes", ["venue", "state"], registry=r
        )
        self.venue_errors = Counter(
            "trading_venue_errors_total",
            "Venue errors by class",
            ["venue", "error_class"],
            registry=r,
        )
        self.tick_to_order = Histogram(
            "trading_tick_to_order_seconds",
            "Tick received by the feed to order sent by execution",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fill_latency = Histogram(
            "trading_fill_latency_seconds",
            "Order submission to fill confirmation",
            ["exchange"],
            buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5),
            registry=r,
        )
        self.position = Gauge(
            "trading_position", "Net position in base asset", ["venue", "symbol"], registry=r
        )
        self.position_drift = Gauge(
            "trading_position_drift_percent",
            "Journal position vs venue balance at the last reconciliation, percent",
            ["venue", "symbol"],
            registry=r,
        )
        self.order_rejections = Counter(
            "trading_order_rejections_total",
            "Orders the venue rejected (rate: rejections / orders sent)",
            ["venue"],
            registry=r,
        )
        self.rate_limit_usage = Gauge(
            "trading_rate_limit_usage_ratio",
            "Venue-reported rate-limit usage as a share of the venue's limit",
            ["venue", "limit"],
            registry=r,
        )
        self.rate_limit_waits = Counter(
            "trading_rate_limit_waits_total",
            "Venue calls delayed by our own rate limiter",
            ["venue", "reason"],
            registry=r,
        )
        self.venue_paused = Gauge(
            "trading_venue_paused",
            "1 while the whole venue is paused after a 429 or a 418 ban",
            ["venue"],
            registry=r,
        )
        self.risk_utilisation = Gauge(
            "trading_risk_limit_utilisation_ratio",
            "How much of each risk limit is used (1.0 = at the limit)",
            ["limit", "symbol"],
            registry=r,
        )
        self.daily_pnl = Gauge(
            "trading_daily_pnl", "Realised plus marked-to-mid PnL since 00:00 UTC", registry=r
        )
        self.flatten_seconds = Histogram(
            "trading_flatten_seconds",
            "Flatten command to flat positions",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.leader = Gauge(
            "trading_execution_leader", "1 while this execution instance is the leader", registry=r
        )
        self.leader_epoch = Gauge(
            "trading_execution_leader_epoch", "Fencing epoch of the current leadership", registry=r
        )
        self.user_stream_age = Gauge(
            "trading_user_stream_age_seconds",
            "Time since the last event on the venue's user data stream",
            ["venue"],
            registry=r,
        )
        self.recovery_adopted = Counter(
            "trading_recovery_adopted_orders",
            "Venue orders recovery found beyond the journal: adopted (their intent known) or"
            " unexplained (our clientOrderId rule, no intent the bus or journal holds)",
            ["venue", "outcome"],
            registry=r,
        )
        self.recovery_seconds = Gauge(
            "trading_recovery_seconds",
            "Duration of the last start-up recovery (journal load to reconciled)",
            registry=r,
        )
