"""Fast leader election as a state machine: one behaviour per test."""

from __future__ import annotations

from zkpy.quorum import wire
from zkpy.quorum.election import Election, Vote, better
from zkpy.quorum.wire import FOLLOWING, LEADING, LOOKING, NO_VOTE, Notification

VOTERS = frozenset({1, 2, 3})


def started(my_id: int = 1, zxid: int = 0, epoch: int = 0, voters: frozenset[int] = VOTERS) -> Election:
    e = Election(my_id, voters, finalize_wait_ms=200, min_interval_ms=200, max_interval_ms=1600)
    e.start(0, zxid, epoch)
    return e


def n(state: int, leader: int, zxid: int = 0, ee: int = 1, peer_epoch: int = 0) -> Notification:
    return Notification(state, leader, zxid, ee, peer_epoch)


def test_votes_order_by_epoch_then_zxid_then_id():
    assert better(1, 0, 2, 3, 99, 1)  # a higher epoch wins over any zxid
    assert better(1, 5, 1, 3, 4, 1)  # then the higher zxid
    assert better(3, 5, 1, 2, 5, 1)  # then the higher id
    assert not better(2, 5, 1, 3, 5, 1)


def test_start_proposes_itself_to_every_other_voter():
    e = started(1, zxid=7, epoch=2)
    assert [sid for sid, _ in e.outbox] == [2, 3]
    assert {m for _, m in e.outbox} == {Notification(LOOKING, 1, 7, 1, 2)}


def test_adopts_a_better_proposal_and_tells_everyone():
    e = started(1, zxid=5)
    e.outbox.clear()
    e.receive(2, n(LOOKING, 2, zxid=9), 10)
    assert e.proposal == (2, 9, 0)
    assert {m.leader for _, m in e.outbox} == {2}
    assert sorted(sid for sid, _ in e.outbox) == [2, 3]


def test_keeps_its_proposal_against_a_worse_one():
    e = started(3, zxid=9)
    e.outbox.clear()
    e.receive(1, n(LOOKING, 1, zxid=5), 10)
    assert e.proposal == (3, 9, 0)
    assert e.outbox == []


def test_jumps_to_a_newer_round_and_compares_with_its_own_vote():
    e = started(3, zxid=9)
    e.receive(1, n(LOOKING, 1, zxid=5, ee=4), 10)
    assert e.logical_clock == 4
    assert e.proposal == (3, 9, 0)


def test_answers_a_looking_peer_in_an_older_round_with_its_vote():
    e = started(1)
    e.receive(2, n(LOOKING, 3, zxid=0, ee=5), 0)  # now in round 5
    e.outbox.clear()
    e.receive(3, n(LOOKING, 3, zxid=0, ee=2), 10)
    assert [(sid, m.election_epoch) for sid, m in e.outbox] == [(3, 5)]


def test_decides_only_after_the_finalize_wait():
    e = started(3, zxid=9)
    assert e.receive(1, n(LOOKING, 3, zxid=9), 10) is None
    assert e.tick(209) is None
    vote = e.tick(210)
    assert vote is not None and vote.leader == 3 and vote.state == LEADING


def test_a_better_vote_during_the_finalize_wait_reopens_the_round():
    e = started(2, zxid=5)
    e.receive(1, n(LOOKING, 2, zxid=5), 10)  # quorum for 2: finalize wait begins
    e.receive(3, n(LOOKING, 3, zxid=9), 50)
    assert e.proposal == (3, 9, 0)
    assert e.tick(210) is None  # the wait starts over for the new proposal
    assert e.tick(250) is not None


def test_follower_decides_for_the_elected_leader():
    e = started(1, zxid=0)
    e.receive(3, n(LOOKING, 3, zxid=9), 0)
    e.receive(2, n(LOOKING, 3, zxid=9), 1)
    vote = e.tick(201)
    assert vote == Vote(3, 9, 1, 0, FOLLOWING)


def test_joins_an_established_leader_from_a_quorum_of_settled_votes():
    e = started(1)
    assert e.receive(3, n(LEADING, 3, zxid=40, ee=7, peer_epoch=2), 0) is None
    vote = e.receive(2, n(FOLLOWING, 3, zxid=12, ee=6, peer_epoch=2), 1)
    assert vote is not None and vote.leader == 3 and vote.state == FOLLOWING
    assert e.logical_clock == 6


def test_does_not_follow_a_leader_without_its_own_word():
    e = started(1, voters=frozenset({1, 2, 3, 4, 5}))
    e.receive(2, n(FOLLOWING, 3, ee=6, peer_epoch=2), 0)
    assert e.receive(4, n(FOLLOWING, 3, ee=6, peer_epoch=2), 1) is None  # 3 never said it leads
    assert e.looking


def test_settled_member_answers_a_looking_peer_with_its_vote():
    e = started(1)
    e.settle(3, 9, 2, FOLLOWING)
    e.outbox.clear()
    e.receive(2, n(LOOKING, 2), 0)
    assert [(sid, m.state, m.leader, m.peer_epoch) for sid, m in e.outbox] == [(2, FOLLOWING, 3, 2)]


def test_answers_a_non_voter_at_once_without_counting_it():
    e = started(1)
    e.outbox.clear()
    e.receive(4, n(LOOKING, NO_VOTE, NO_VOTE, 1, NO_VOTE), 0)
    assert [sid for sid, _ in e.outbox] == [4]
    assert 4 not in e.recvset


def test_observer_never_proposes_itself():
    e = Election(4, VOTERS)
    e.start(0, 99, 5)
    assert e.proposal == (NO_VOTE, NO_VOTE, NO_VOTE)
    assert [sid for sid, _ in e.outbox] == [1, 2, 3]


def test_observer_adopts_the_voters_choice():
    e = Election(4, VOTERS, finalize_wait_ms=200)
    e.start(0, 0, 0)
    e.receive(1, n(LOOKING, 3, zxid=9), 0)
    e.receive(2, n(LOOKING, 3, zxid=9), 1)
    vote = e.tick(201)
    assert vote is not None and vote.leader == 3 and vote.state == wire.OBSERVING


def test_resends_with_growing_pauses_when_nothing_is_heard():
    e = started(1)
    e.outbox.clear()
    e.tick(199)
    assert e.outbox == []
    e.tick(200)
    assert len(e.outbox) == 2
    e.outbox.clear()
    e.tick(599)
    assert e.outbox == []  # the pause doubled to 400 ms
    e.tick(600)
    assert len(e.outbox) == 2


def test_a_reconnected_peer_gets_the_current_proposal():
    e = started(1, zxid=3)
    e.outbox.clear()
    e.peer_connected(2)
    assert [(sid, m.leader, m.zxid) for sid, m in e.outbox] == [(2, 1, 3)]


def test_votes_for_non_members_count_for_nothing():
    e = started(1)
    e.receive(2, n(LOOKING, 9, zxid=100), 0)
    assert e.proposal[0] == 1
