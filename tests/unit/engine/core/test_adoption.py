"""Adoption (engine/core/adoption.py): which venue orders a lost journal tail recorded, whose
they are, and where to look for them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.adoption import (
    SLACK_NS,
    ListedOrder,
    adoption_horizon,
    last_write_ns,
    plan_adoption,
)
from engine.core.ids import client_order_id, family, parse_client_order_id
from engine.core.messages import Intent, OrderRequest, OrderType, Side, TimeInForce
from engine.core.orders import OrderRecord, OrderState

pytestmark = pytest.mark.unit

T0_NS = 1_765_000_000_000_000_000
T0_MS = T0_NS // 1_000_000


def intent(intent_id: str, *, algo: str = "", side: Side = Side.BUY, **kw: object) -> Intent:
    return Intent(
        correlation_id=f"corr-{intent_id}",
        intent_id=intent_id,
        source="test",
        venue="binance",
        symbol="BTCUSDT",
        side=side,
        qty=Decimal("0.003"),
        algo=algo,  # type: ignore[arg-type]
        algo_params={"max_child_qty": "0.001"} if algo else {},
        reference_price=65000.5,
        created_ts_ns=T0_NS,
        **kw,  # type: ignore[arg-type]
    )


def request(i: Intent, approved_ns: int = T0_NS) -> OrderRequest:
    return OrderRequest(correlation_id=i.correlation_id, intent=i, approved_ts_ns=approved_ns)


def cancel(target: str) -> OrderRequest:
    return request(
        Intent(
            intent_id=f"cancel-{target}",
            source="test",
            venue="binance",
            symbol="BTCUSDT",
            action="cancel",
            cancel_intent_id=target,
        )
    )


def listed(
    cid: str,
    *,
    side: Side = Side.BUY,
    symbol: str = "BTCUSDT",
    order_type: str = "MARKET",
    status: str = "FILLED",
    time_ms: int = T0_MS + 5,
    venue_order_id: str = "7",
) -> ListedOrder:
    return ListedOrder(
        client_order_id=cid,
        venue_order_id=venue_order_id,
        symbol=symbol,
        side=side,
        order_type=order_type,
        qty=Decimal("0.001"),
        price=Decimal("65001.25") if order_type != "MARKET" else Decimal(0),
        time_in_force="GTC",
        status=status,
        filled_qty=Decimal("0.001"),
        quote_qty=Decimal("65.00125"),
        time_ms=time_ms,
    )


def plan(**kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = dict(
        journal_orders={},
        journal_parents=(),
        requests=(),
        parent_intents=(),
        venue_orders=(),
        venue="binance",
    )
    args.update(kw)
    return plan_adoption(**args)  # type: ignore[arg-type]


# --- the id rule ---------------------------------------------------------------------------------


def test_a_client_order_id_is_its_intents_family_and_the_child_index() -> None:
    cid = client_order_id("intent-1", 12)
    assert parse_client_order_id(cid) == (family("intent-1"), 12)
    assert cid.startswith(family("intent-1") + "-")


@pytest.mark.parametrize(
    "other",
    [
        "web_abc123",
        "sp-1",
        family("x") + "-",
        family("x") + "-01",
        family("x") + "-100000",
        family("x").upper() + "-0",
        family("x") + "-0-1",
        "x" + family("x")[1:] + "-0",
    ],
)
def test_ids_outside_our_rule_are_not_ours(other: str) -> None:
    assert parse_client_order_id(other) is None


# --- what is adopted -----------------------------------------------------------------------------


def test_a_lost_direct_order_is_adopted_as_its_lost_insert_had_it() -> None:
    direct = intent("direct-1")
    cid = client_order_id("direct-1", 0)
    result = plan(requests=[request(direct)], venue_orders=[listed(cid)])
    (record,) = result.adopt
    assert record == OrderRecord(
        client_order_id=cid,
        intent_id="direct-1",
        child_index=0,
        venue="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        qty=Decimal("0.001"),
        limit_price=None,
        time_in_force=TimeInForce.GTC,
        state=OrderState.SUBMITTING,
        correlation_id="corr-direct-1",
        created_ts_ns=(T0_MS + 5) * 1_000_000,
        sent_ts_ns=(T0_MS + 5) * 1_000_000,
        updated_ts_ns=(T0_MS + 5) * 1_000_000,
        reference_price=65000.5,
        seq=1,
    )
    assert result.unknown == () and result.parents == ()


def test_a_limit_order_keeps_its_price_and_time_in_force() -> None:
    i = intent("limit-1", order_type=OrderType.LIMIT, limit_price=Decimal("65001.25"))
    cid = client_order_id("limit-1", 0)
    (record,) = plan(requests=[request(i)], venue_orders=[listed(cid, order_type="LIMIT")]).adopt
    assert record.order_type is OrderType.LIMIT
    assert record.limit_price == Decimal("65001.25")


def test_orders_the_journal_has_and_orders_of_other_clients_are_left_alone() -> None:
    i = intent("known")
    known = client_order_id("known", 0)
    result = plan(
        journal_orders={known: "known"},
        requests=[request(i)],
        venue_orders=[listed(known), listed("web_manual_1"), listed("x-abc")],
    )
    assert result.adopt == () and result.unknown == () and result.parents == ()


def test_an_order_under_our_rule_that_no_intent_explains_is_unknown_never_adopted() -> None:
    stray = client_order_id("trimmed-long-ago", 0)
    result = plan(requests=[request(intent("other"))], venue_orders=[listed(stray)])
    assert result.adopt == ()
    (unknown,) = result.unknown
    assert unknown.order.client_order_id == stray
    assert "no intent" in unknown.reason


@pytest.mark.parametrize(
    ("venue_order", "why"),
    [
        (listed(client_order_id("d", 0), side=Side.SELL), "SELL order"),
        (listed(client_order_id("d", 0), symbol="ETHUSDT"), "ETHUSDT"),
        (listed(client_order_id("d", 1)), "child 1"),
        (listed(client_order_id("d", 0), order_type="STOP_LOSS"), "STOP_LOSS"),
    ],
)
def test_an_order_that_contradicts_its_intent_is_unknown(
    venue_order: ListedOrder, why: str
) -> None:
    result = plan(requests=[request(intent("d"))], venue_orders=[venue_order])
    assert result.adopt == ()
    (unknown,) = result.unknown
    assert why in unknown.reason


def test_children_of_an_unfinished_parent_are_adopted_whatever_the_age_of_its_request() -> None:
    twap = intent("twap-1", algo="split")
    children = [listed(client_order_id("twap-1", k), venue_order_id=str(k)) for k in (3, 4)]
    result = plan(
        journal_orders={client_order_id("twap-1", k): "twap-1" for k in (0, 1, 2)},
        journal_parents={"twap-1"},
        parent_intents=[twap],  # its request is no longer in the horizon
        venue_orders=children,
    )
    assert [(o.intent_id, o.child_index) for o in result.adopt] == [("twap-1", 3), ("twap-1", 4)]
    assert result.parents == ()


def test_a_parent_the_journal_lost_is_restored_when_its_children_reached_the_venue() -> None:
    split = intent("split-1", algo="split")
    quiet = intent("split-2", algo="split")  # no child anywhere: nothing proves it was worked
    result = plan(
        requests=[request(split, approved_ns=T0_NS + 7), request(quiet)],
        venue_orders=[listed(client_order_id("split-1", 0))],
    )
    (restored,) = result.parents
    assert restored.intent == split
    assert restored.created_ts_ns == T0_NS + 7
    assert restored.state == "active"


def test_a_restored_parent_with_a_cancel_request_on_the_bus_is_canceling() -> None:
    split = intent("split-1", algo="split")
    result = plan(
        requests=[request(split), cancel("split-1")],
        venue_orders=[listed(client_order_id("split-1", 0))],
    )
    assert [p.state for p in result.parents] == ["canceling"]


def test_a_parent_the_journal_has_is_never_restored() -> None:
    split = intent("split-1", algo="split")
    result = plan(
        journal_parents={"split-1"},
        requests=[request(split)],
        venue_orders=[listed(client_order_id("split-1", 0))],
    )
    assert len(result.adopt) == 1 and result.parents == ()


def test_adopted_orders_come_in_the_order_the_venue_placed_them() -> None:
    ids = [f"i{n}" for n in range(5)]
    orders = [
        listed(client_order_id(i, 0), time_ms=T0_MS + 10 - n, venue_order_id=str(100 - n))
        for n, i in enumerate(ids)
    ]
    result = plan(requests=[request(intent(i)) for i in ids], venue_orders=orders)
    assert [o.intent_id for o in result.adopt] == list(reversed(ids))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["journal", "bus", "parent", "gone", "foreign"]),
            st.integers(min_value=0, max_value=3),
        ),
        max_size=25,
    )
)
def test_every_venue_order_is_journaled_adopted_unknown_or_foreign_exactly_once(
    cases: list[tuple[str, int]],
) -> None:
    journal: dict[str, str] = {}
    requests: list[OrderRequest] = []
    parents: list[Intent] = []
    venue_orders: list[ListedOrder] = []
    for n, (where, child) in enumerate(cases):
        intent_id = f"intent-{n}"
        i = intent(intent_id, algo="split")
        cid = client_order_id(intent_id, child) if where != "foreign" else f"web-{n}"
        venue_orders.append(listed(cid, venue_order_id=str(n)))
        if where == "journal":
            journal[cid] = intent_id
        elif where == "bus":
            requests.append(request(i))
        elif where == "parent":
            parents.append(i)
    result = plan(
        journal_orders=journal,
        journal_parents={i.intent_id for i in parents},
        requests=requests,
        parent_intents=parents,
        venue_orders=venue_orders,
    )
    adopted = {o.client_order_id for o in result.adopt}
    unknown = {u.order.client_order_id for u in result.unknown}
    for (where, _), order in zip(cases, venue_orders, strict=True):
        cid = order.client_order_id
        assert (cid in adopted) == (where in ("bus", "parent")), (where, cid)
        assert (cid in unknown) == (where == "gone"), (where, cid)
    assert not adopted & set(journal)
    assert {p.intent.intent_id for p in result.parents} == {
        f"intent-{n}" for n, (where, _) in enumerate(cases) if where == "bus"
    }


# --- where to look -------------------------------------------------------------------------------


def test_the_horizon_starts_a_slack_before_the_journals_last_write() -> None:
    lookback_ns = 600 * 1_000_000_000
    horizon = adoption_horizon(
        last_write_ns=T0_NS, now_ns=T0_NS + 3_600 * 10**9, lookback_ns=lookback_ns
    )
    assert horizon.venue_since_ms == (T0_NS - SLACK_NS) // 1_000_000
    assert horizon.requests_since_ns == T0_NS - SLACK_NS - lookback_ns


def test_an_empty_journal_may_have_lost_everything_so_the_horizon_is_the_lookback() -> None:
    lookback_ns = 600 * 1_000_000_000
    horizon = adoption_horizon(last_write_ns=None, now_ns=T0_NS, lookback_ns=lookback_ns)
    assert horizon.venue_since_ms == (T0_NS - lookback_ns - SLACK_NS) // 1_000_000


def test_a_last_write_stamped_in_the_future_does_not_move_the_horizon_past_now() -> None:
    horizon = adoption_horizon(last_write_ns=T0_NS + 10**12, now_ns=T0_NS, lookback_ns=10**9)
    assert horizon.venue_since_ms == (T0_NS - SLACK_NS) // 1_000_000
    with pytest.raises(ValueError, match="positive"):
        adoption_horizon(last_write_ns=None, now_ns=T0_NS, lookback_ns=0)


def test_the_last_write_is_the_latest_stamp_of_any_order_or_parent() -> None:
    base = OrderRecord(
        client_order_id="c",
        intent_id="i",
        child_index=0,
        venue="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        qty=Decimal(1),
    )
    orders = [
        OrderRecord(**{**_fields(base), "created_ts_ns": 5, "sent_ts_ns": 9, "updated_ts_ns": 7}),
        OrderRecord(**{**_fields(base), "created_ts_ns": 3, "updated_ts_ns": 8}),
    ]
    assert last_write_ns(orders, [4]) == 9
    assert last_write_ns(orders, [12]) == 12
    assert last_write_ns([], []) is None


def _fields(record: OrderRecord) -> dict[str, object]:
    return {f: getattr(record, f) for f in record.__struct_fields__}
