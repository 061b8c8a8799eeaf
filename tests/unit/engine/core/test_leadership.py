"""The leadership of one execution instance as one state machine: standby, elected, recovering,
leading, deposed; what each event asks the service to do, and which events it refuses."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.core.leadership import Leadership, LeadershipState, LeadershipStateError

pytestmark = pytest.mark.unit


def leading(epoch: int = 7) -> Leadership:
    leadership = Leadership()
    assert leadership.on_elected(epoch)
    assert leadership.on_claimed()
    assert leadership.on_recovered()
    return leadership


def test_a_standby_is_no_leader_and_may_not_send() -> None:
    leadership = Leadership()
    assert leadership.state is LeadershipState.STANDBY
    assert leadership.role == "standby" and leadership.leader_epoch is None
    assert not leadership.recovered and not leadership.deposed
    assert not leadership.may_send(lease_held=True)


def test_an_election_is_claimed_then_recovered_then_leads() -> None:
    leadership = Leadership()
    assert leadership.on_elected(7)
    assert leadership.state is LeadershipState.ELECTED and leadership.epoch == 7
    # elected but not claimed: still a standby to the outside, and nothing may be sent
    assert leadership.role == "standby" and leadership.leader_epoch is None
    assert not leadership.may_send(lease_held=True)
    assert leadership.on_claimed()
    assert leadership.state is LeadershipState.RECOVERING
    assert leadership.role == "leader" and leadership.leader_epoch == 7
    # recovery resends and cancels: it sends as the leader it is
    assert leadership.may_send(lease_held=True) and not leadership.recovered
    assert leadership.on_recovered()
    assert leadership.state is LeadershipState.LEADING and leadership.recovered
    assert leadership.may_send(lease_held=True)


def test_a_leader_whose_lease_term_ran_out_may_not_send() -> None:
    assert not leading().may_send(lease_held=False)


def test_a_single_instance_leads_with_epoch_zero() -> None:
    leadership = Leadership()
    assert leadership.on_elected(0) and leadership.on_claimed() and leadership.on_recovered()
    assert leadership.leader_epoch == 0 and leadership.role == "leader"


def test_a_second_election_is_ignored() -> None:
    leadership = Leadership()
    assert leadership.on_elected(7)
    assert not leadership.on_elected(8)
    assert leadership.epoch == 7
    leader = leading(7)
    assert not leader.on_elected(9) and leader.epoch == 7


def test_a_deposal_of_our_term_ends_leadership_for_good() -> None:
    leadership = leading(7)
    assert leadership.on_deposed(7, "lost: refused")
    assert leadership.state is LeadershipState.DEPOSED and leadership.deposed
    assert leadership.reason == "lost: refused"
    assert not leadership.may_send(lease_held=True)
    # what /status reports of the term stays: the epoch it held, that it had recovered
    assert leadership.role == "leader" and leadership.leader_epoch == 7 and leadership.recovered
    # the elector campaigns again after a deposal; this process exits instead
    assert not leadership.on_elected(8)
    assert not leadership.on_deposed(7, "again")
    assert leadership.reason == "lost: refused"


def test_a_deposal_of_another_term_or_of_a_standby_is_ignored() -> None:
    leadership = leading(7)
    assert not leadership.on_deposed(6, "an older term")
    assert leadership.state is LeadershipState.LEADING
    standby = Leadership()
    assert not standby.on_deposed(3, "not ours")
    assert standby.state is LeadershipState.STANDBY


def test_a_term_deposed_before_its_claim_is_never_claimed() -> None:
    leadership = Leadership()
    assert leadership.on_elected(7)
    assert leadership.on_deposed(7, "expired")
    assert not leadership.on_claimed()
    assert leadership.role == "standby" and leadership.leader_epoch is None


def test_a_term_deposed_during_recovery_does_not_lead() -> None:
    leadership = Leadership()
    assert leadership.on_elected(7) and leadership.on_claimed()
    assert leadership.on_deposed(7, "expired")
    assert not leadership.on_recovered()
    assert leadership.state is LeadershipState.DEPOSED and leadership.recovered


def test_fencing_deposes_a_claimed_leader_once() -> None:
    leadership = leading(7)
    assert leadership.on_fenced("fenced: epoch 8 wrote")
    assert leadership.deposed and leadership.reason == "fenced: epoch 8 wrote"
    assert not leadership.on_fenced("again")
    assert not leadership.on_deposed(7, "stopped")
    assert leadership.reason == "fenced: epoch 8 wrote"


@pytest.mark.parametrize(
    ("setup", "event"),
    [
        (lambda ld: None, lambda ld: ld.on_claimed()),
        (lambda ld: None, lambda ld: ld.on_recovered()),
        (lambda ld: None, lambda ld: ld.on_fenced("no journal claimed")),
        (lambda ld: ld.on_elected(1), lambda ld: ld.on_recovered()),
        (lambda ld: ld.on_elected(1), lambda ld: ld.on_fenced("not claimed yet")),
        (lambda ld: (ld.on_elected(1), ld.on_claimed()), lambda ld: ld.on_claimed()),
        (lambda ld: None, lambda ld: ld.on_elected(-1)),
    ],
)
def test_an_illegal_transition_raises(
    setup: Callable[[Leadership], object], event: Callable[[Leadership], object]
) -> None:
    leadership = Leadership()
    setup(leadership)
    before = leadership.state
    with pytest.raises(LeadershipStateError):
        event(leadership)
    assert leadership.state is before
