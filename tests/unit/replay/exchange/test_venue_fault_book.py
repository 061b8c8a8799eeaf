"""The venue fault book: a log of every fault for the harness, checked per request only
against the faults still running."""

import pytest

from replay.exchange.venue_faults import NO_FAULT, VenueFaultBook

pytestmark = pytest.mark.unit
MS = 1_000_000


def test_a_request_no_fault_touches_gets_the_plain_plan() -> None:
    book = VenueFaultBook()
    assert book.plan("GET", "/api/v3/ping", 0, is_new_order=False) is NO_FAULT


def test_a_fault_applies_until_its_end_then_only_the_log_keeps_it() -> None:
    book = VenueFaultBook()
    fault = book.add(kind="maintenance", now_ns=0, duration_ms=100)
    assert book.plan("GET", "/api/v3/ping", 50 * MS, is_new_order=False).status == 503
    assert book.plan("GET", "/api/v3/ping", 100 * MS, is_new_order=False) is NO_FAULT
    assert book.faults == [fault], "the log keeps ended faults for the harness to read back"
    assert fault.ended_ns == 100 * MS
    assert fault.applied == 1
    assert book.active(200 * MS) == []


def test_a_fault_ended_by_hand_stops_applying_at_once() -> None:
    book = VenueFaultBook()
    fault = book.add(kind="reject", now_ns=0, endpoint="POST /api/v3/order")
    assert book.plan("POST", "/api/v3/order", MS, is_new_order=True).code == -2010
    book.end(fault.fault_id, 2 * MS)
    assert book.plan("POST", "/api/v3/order", 3 * MS, is_new_order=True) is NO_FAULT
    assert book.faults[0].ended_ns == 2 * MS


def test_the_caller_cannot_change_the_live_set_through_active() -> None:
    book = VenueFaultBook()
    book.add(kind="maintenance", now_ns=0)
    book.active(MS).clear()
    assert book.plan("GET", "/api/v3/ping", MS, is_new_order=False).status == 503
