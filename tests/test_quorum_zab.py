"""ZAB's leader and learner cores, driven by hand: one behaviour per test."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.quorum_sim.helpers import entry, history, make_leader, make_learner, packet, peer, persist_all, take
from zkpy.proto.records import Id
from zkpy.quorum import wire
from zkpy.quorum.effects import (
    AppendEntries,
    InstallSnapshot,
    Role,
    SetAcceptedEpoch,
    SetCurrentEpoch,
    TruncateLog,
)
from zkpy.quorum.history import History
from zkpy.quorum.leader import NotLeaderError, ZxidRolloverError, plan_sync
from zkpy.quorum.peer import DiskState, PeerCore
from zkpy.quorum.zxid import make_zxid

E1 = make_zxid(1, 0)


def follower_info(sid: int, accepted: int = 0, observer: bool = False):
    return packet(wire.OBSERVERINFO if observer else wire.FOLLOWERINFO, make_zxid(accepted, 0),
                  wire.encode_learner_info(sid))


def ackepoch(last: int, current: int):
    return packet(wire.ACKEPOCH, last, wire.encode_int(current))


def leader_in_discovery(disk: DiskState | None = None, **kw) -> PeerCore:
    core = make_leader(3, disk, **kw)
    take(core)
    return core


def established_leader(**kw) -> tuple[PeerCore, int]:
    """Leader 3 in epoch 1 with follower 1 on connection 10, both in broadcast."""
    core = leader_in_discovery(**kw)
    core.quorum_accepted(10)
    core.quorum_packet(10, follower_info(1))
    persist_all(core, take(core))  # acceptedEpoch
    core.quorum_packet(10, ackepoch(0, 0))
    persist_all(core, take(core))  # currentEpoch
    core.quorum_packet(10, packet(wire.ACK, E1))
    fx = take(core)
    assert core.established_leader and "UPTODATE" in fx.sent_types(10)
    return core, 10


# ---------------------------------------------------------------------- leader: discovery


def test_leader_picks_an_epoch_above_every_accepted_one_once_a_quorum_is_in():
    core = leader_in_discovery(disk=DiskState(accepted_epoch=2, current_epoch=2))
    core.quorum_accepted(10)
    core.quorum_packet(10, follower_info(1, accepted=5))
    fx = take(core)
    assert fx.persist == [SetAcceptedEpoch(6)]


def test_leader_waits_for_a_quorum_before_choosing_the_epoch():
    core = leader_in_discovery(voters=(1, 2, 3, 4, 5))
    core.quorum_accepted(10)
    core.quorum_packet(10, follower_info(1))
    assert take(core).persist == []


def test_leader_offers_the_epoch_only_once_its_acceptance_is_durable():
    core = leader_in_discovery()
    core.quorum_accepted(10)
    core.quorum_packet(10, follower_info(1))
    fx = take(core)
    assert fx.sent(10) == []
    released = persist_all(core, fx)
    assert released.sent(10) == [packet(wire.LEADERINFO, E1, wire.encode_int(0x10000))]


def test_leader_refuses_a_server_outside_the_configuration():
    core = leader_in_discovery()
    core.quorum_accepted(10)
    core.quorum_packet(10, follower_info(9))
    assert take(core).close == [10]


def test_leader_steps_down_when_a_follower_is_ahead_of_it():
    core = leader_in_discovery()
    core.quorum_accepted(10)
    core.quorum_packet(10, follower_info(1))
    persist_all(core, take(core))
    core.quorum_packet(10, ackepoch(make_zxid(0, 9), 0))  # same epoch, longer log
    assert core.role == Role.LOOKING


def test_leader_does_not_count_an_epoch_acknowledged_twice():
    core = leader_in_discovery()
    core.quorum_accepted(10)
    core.quorum_packet(10, follower_info(1))
    persist_all(core, take(core))
    core.quorum_packet(10, ackepoch(0, -1))  # "already accepted": it acknowledged us before
    assert SetCurrentEpoch(1) not in take(core).persist


def test_leader_syncs_learners_and_persists_its_epoch_after_a_quorum_of_acks():
    core = leader_in_discovery()
    core.quorum_accepted(10)
    core.quorum_packet(10, follower_info(1))
    persist_all(core, take(core))
    core.quorum_packet(10, ackepoch(0, 0))
    fx = take(core)
    assert fx.persist == [SetCurrentEpoch(1)]
    assert fx.sent_types(10) == ["DIFF", "NEWLEADER"]


def test_leader_is_established_only_with_its_own_epoch_durable():
    core = leader_in_discovery()
    core.quorum_accepted(10)
    core.quorum_packet(10, follower_info(1))
    persist_all(core, take(core))
    core.quorum_packet(10, ackepoch(0, 0))
    fx = take(core)
    core.quorum_packet(10, packet(wire.ACK, E1))
    assert not core.established_leader
    persist_all(core, fx)
    assert core.established_leader


def test_leader_steps_down_for_a_member_that_accepted_a_later_epoch():
    core, _conn = established_leader()
    core.quorum_accepted(11)
    core.quorum_packet(11, follower_info(2, accepted=5))  # promised epoch 5 to a failed leader
    assert core.role == Role.LOOKING  # the next epoch will count its promise


def test_leader_times_out_without_a_quorum_in_init_limit():
    core = leader_in_discovery()
    core.tick(core.now + 10 * 100)
    assert core.role == Role.LOOKING


def test_leader_fast_forwards_its_whole_log_before_syncing_anyone():
    logged = history(1, 3)
    core = make_leader(3, DiskState(1, 1, 0, 0, logged))
    # Everything logged was applied at start-up already (the driver replays the log).
    assert core.applied == logged[-1][0]


# ---------------------------------------------------------------------- leader: sync plans


def hist(points: list[int], base: int = 0) -> History:
    return History(base, base, [(z, entry(z)) for z in points])


def test_plan_empty_diff_for_a_learner_at_the_point():
    assert plan_sync(hist([0x101, 0x102]), 0x102, 0x102) == (wire.DIFF, 0x102, 0x102)


def test_plan_diff_for_a_learner_holding_a_prefix():
    assert plan_sync(hist([0x101, 0x102, 0x103]), 0x101, 0x103) == (wire.DIFF, 0x103, 0x101)


def test_plan_trunc_for_a_learner_with_proposals_not_committed():
    h = hist([0x101, 0x102, 0x103])
    assert plan_sync(h, 0x103, 0x102) == (wire.TRUNC, 0x102, 0x102)


def test_plan_trunc_within_the_epoch_where_the_learner_diverged():
    h = hist([make_zxid(1, 1), make_zxid(1, 2), make_zxid(2, 1)])
    # The learner went on in epoch 1 (1.3, 1.4) after 1.2: rewind it to 1.2, then 2.1 follows.
    assert plan_sync(h, make_zxid(1, 4), make_zxid(2, 1)) == (wire.TRUNC, make_zxid(1, 2), make_zxid(1, 2))


def test_plan_snap_when_divergence_crosses_an_epoch():
    h = hist([make_zxid(1, 1), make_zxid(3, 1)])
    assert plan_sync(h, make_zxid(2, 5), make_zxid(3, 1))[0] == wire.SNAP


def test_plan_snap_for_a_learner_behind_the_history_held():
    h = hist([make_zxid(1, 50), make_zxid(1, 51)], base=make_zxid(1, 49))
    assert plan_sync(h, make_zxid(1, 10), make_zxid(1, 51)) == (wire.SNAP, make_zxid(1, 51), make_zxid(1, 51))


def test_plan_snap_for_a_learner_asking_for_one():
    assert plan_sync(hist([0x101]), -1, 0x101)[0] == wire.SNAP


def test_leader_sends_a_snapshot_with_the_database_at_its_zxid():
    logged = history(1, 5)
    core = leader_in_discovery(DiskState(1, 1, 0, make_zxid(1, 3), logged[3:]))
    core.quorum_accepted(10)
    core.quorum_packet(10, follower_info(1, accepted=1))
    persist_all(core, take(core))
    core.quorum_packet(10, ackepoch(make_zxid(1, 1), 1))
    fx = take(core)
    snap = [o for o in fx.packets if o.packet is not None and o.packet.type == wire.SNAP]
    assert len(snap) == 1 and snap[0].with_snapshot and snap[0].packet.zxid == make_zxid(1, 5)


# ---------------------------------------------------------------------- leader: broadcast


def test_leader_assigns_the_next_zxid_in_the_txn_header():
    core, conn = established_leader()
    zxid = core.propose(entry(7))
    assert zxid == make_zxid(1, 1)
    (prop,) = take(core).sent(conn, wire.PROPOSAL)
    assert prop.zxid == zxid and prop.data is not None and prop.data[12:20] == zxid.to_bytes(8, "big")


def test_leader_commits_only_with_its_own_fsync_and_a_follower_ack():
    core, conn = established_leader()
    zxid = core.propose(entry(7))
    fx = take(core)
    core.quorum_packet(conn, packet(wire.ACK, zxid))
    assert take(core).sent(conn, wire.COMMIT) == []
    released = persist_all(core, fx)
    assert released.sent(conn, wire.COMMIT) == [packet(wire.COMMIT, zxid)]
    assert [z for z, _ in released.apply] == [zxid]


def test_leader_commits_in_zxid_order():
    core, conn = established_leader()
    z1 = core.propose(entry(1))
    z2 = core.propose(entry(2))
    persist_all(core, take(core))
    core.quorum_packet(conn, packet(wire.ACK, z2))
    assert take(core).apply == []
    core.quorum_packet(conn, packet(wire.ACK, z1))
    assert [z for z, _ in take(core).apply] == [z1, z2]


def test_leader_logs_the_proposals_of_one_ready_as_one_batch_and_commits_them_together():
    core, conn = established_leader()
    zs = [core.propose(entry(i)) for i in (1, 2, 3)]
    fx = take(core)
    assert len(fx.readies) == 1 and fx.persist == [AppendEntries(zs, [p.data for p in fx.sent(conn)])]
    assert len(fx.packets) == 1 and fx.sent_types(conn) == ["PROPOSAL"] * 3  # one send of three packets
    core.quorum_packets(conn, [(packet(wire.ACK, z), None) for z in zs])
    assert take(core).apply == []  # the leader's own log is not durable yet
    released = persist_all(core, fx)
    assert released.sent(conn, wire.COMMIT) == [packet(wire.COMMIT, z) for z in zs]
    assert [z for z, _ in released.apply] == zs and len(released.packets) == 1


def test_leader_counts_its_own_vote_up_to_what_its_log_holds():
    core, conn = established_leader()
    z1 = core.propose(entry(1))
    first = take(core)
    z2 = core.propose(entry(2))
    second = take(core)
    core.quorum_packets(conn, [(packet(wire.ACK, z1), None), (packet(wire.ACK, z2), None)])
    assert take(core).apply == []
    assert [z for z, _ in persist_all(core, first).apply] == [z1]  # z2 is not in its log yet
    assert [z for z, _ in persist_all(core, second).apply] == [z2]


def test_leader_commits_with_two_followers_before_its_own_fsync():
    core, conn = established_leader(voters=(1, 2, 3))
    core.quorum_accepted(11)
    core.quorum_packet(11, follower_info(2, accepted=1))
    core.quorum_packet(11, ackepoch(0, 0))
    core.quorum_packet(11, packet(wire.ACK, E1))
    take(core)
    zxid = core.propose(entry(1))
    take(core)
    core.quorum_packet(conn, packet(wire.ACK, zxid))
    assert take(core).apply == []
    core.quorum_packet(11, packet(wire.ACK, zxid))  # 1 and 2 are a quorum of three
    assert [z for z, _ in take(core).apply] == [zxid]


def test_leader_does_not_count_observer_acks():
    core, _conn = established_leader(voters=(1, 2, 3), observers=(4,))
    core.quorum_accepted(11)
    core.quorum_packet(11, follower_info(4, accepted=1, observer=True))
    core.quorum_packet(11, ackepoch(0, 0))
    core.quorum_packet(11, packet(wire.ACK, E1))
    take(core)
    zxid = core.propose(entry(1))
    persist_all(core, take(core))
    core.quorum_packet(11, packet(wire.ACK, zxid))
    assert take(core).apply == []


def test_leader_informs_observers_of_commits():
    core, conn = established_leader(voters=(1, 2, 3), observers=(4,))
    core.quorum_accepted(11)
    core.quorum_packet(11, follower_info(4, accepted=1, observer=True))
    core.quorum_packet(11, ackepoch(0, 0))
    core.quorum_packet(11, packet(wire.ACK, E1))
    take(core)
    zxid = core.propose(entry(1))
    fx = take(core)
    assert fx.sent(11, wire.PROPOSAL) == []
    core.quorum_packet(conn, packet(wire.ACK, zxid))
    released = persist_all(core, fx)
    (inform,) = released.sent(11, wire.INFORM)
    assert inform.zxid == zxid and inform.data == released.apply[0][1]


def test_leader_forces_a_new_epoch_when_the_counter_runs_out():
    core, _conn = established_leader(counter_max=2)
    core.propose(entry(1))
    core.propose(entry(2))
    with pytest.raises(ZxidRolloverError):
        core.propose(entry(3))
    assert core.role == Role.LOOKING


def test_only_an_established_leader_takes_writes():
    core = leader_in_discovery()
    with pytest.raises(NotLeaderError):
        core.propose(entry(1))


def test_leader_steps_down_when_followers_go_quiet():
    core, _conn = established_leader()
    core.tick(core.now + 5 * 100 + 60)
    assert core.role == Role.LOOKING


def test_leader_answers_sync_after_commit_and_a_quorum_ping():
    core, conn = established_leader()
    zxid = core.propose(entry(1))
    persist_all(core, take(core))
    core.quorum_packet(conn, packet(wire.REQUEST, -1, wire.encode_request(5, 1, 9, b"")))
    fx = take(core)
    assert fx.sent(conn, wire.SYNC) == []
    assert fx.sent(conn, wire.PING)  # is 1 still following us? asked at once
    core.quorum_packet(conn, packet(wire.ACK, zxid))
    assert take(core).sent(conn, wire.SYNC) == []  # committed, no answer to the PING yet
    core.quorum_packet(conn, packet(wire.PING, 0))
    assert take(core).sent(conn, wire.SYNC) == [packet(wire.SYNC, 0)]


def test_leader_reports_forwarded_writes_and_session_touches():
    core, conn = established_leader()
    req = wire.encode_request(5, 1, 1, b"create")
    auth = [Id("digest", "u:x")]
    core.quorum_packet(conn, wire.packet(wire.REQUEST, -1, req, auth))
    core.quorum_packet(conn, packet(wire.PING, 0, wire.encode_touches({5: 4000})))
    core.quorum_packet(conn, packet(wire.REVALIDATE, -1, wire.encode_revalidate_request(6, 3000)))
    fx = take(core)
    assert fx.learner_requests == [(1, req, auth)]
    assert fx.session_touches == [(5, 4000)]
    assert fx.revalidate_requests == [(1, 6, 3000)]
    core.revalidate_reply(1, 6, False)
    assert take(core).sent(conn, wire.REVALIDATE) == [
        packet(wire.REVALIDATE, -1, wire.encode_revalidate_response(6, False))]


def test_leader_with_leader_serves_off_does_not_serve():
    core, _ = established_leader(leader_serves=False)
    assert core.established_leader and not core.serving


def test_a_member_not_leading_refuses_learner_connections():
    core = peer(1)
    take(core)
    core.quorum_accepted(10)
    assert take(core).close == [10]


# ---------------------------------------------------------------------- learner


def test_learner_introduces_itself_with_its_accepted_epoch():
    core, conn = make_learner(1, 3, DiskState(accepted_epoch=4, current_epoch=4))
    assert take(core).sent(conn) == [packet(wire.FOLLOWERINFO, make_zxid(4, 0), wire.encode_learner_info(1))]


def test_learner_persists_the_new_epoch_before_acknowledging_it():
    core, conn = make_learner(1, 3, DiskState(accepted_epoch=1, current_epoch=1))
    take(core)
    core.quorum_packet(conn, packet(wire.LEADERINFO, make_zxid(2, 0), wire.encode_int(0x10000)))
    fx = take(core)
    assert fx.persist == [SetAcceptedEpoch(2)] and fx.sent(conn) == []
    assert persist_all(core, fx).sent(conn) == [ackepoch(0, 1)]


def test_learner_acknowledges_an_epoch_it_already_accepted_with_minus_one():
    core, conn = make_learner(1, 3, DiskState(accepted_epoch=2, current_epoch=1))
    take(core)
    core.quorum_packet(conn, packet(wire.LEADERINFO, make_zxid(2, 0), wire.encode_int(0x10000)))
    assert take(core).sent(conn) == [ackepoch(0, -1)]


def test_learner_refuses_a_leader_with_an_older_epoch():
    core, conn = make_learner(1, 3, DiskState(accepted_epoch=5, current_epoch=5))
    core.quorum_packet(conn, packet(wire.LEADERINFO, make_zxid(4, 0), wire.encode_int(0x10000)))
    assert core.role == Role.LOOKING


def synced_learner(disk: DiskState | None = None, epoch: int = 2, **kw) -> tuple[PeerCore, int]:
    core, conn = make_learner(1, 3, disk or DiskState(accepted_epoch=1, current_epoch=1), **kw)
    core.quorum_packet(conn, packet(wire.LEADERINFO, make_zxid(epoch, 0), wire.encode_int(0x10000)))
    persist_all(core, take(core))
    return core, conn


def test_learner_persists_the_synced_history_before_its_new_epoch_and_then_acks():
    core, conn = synced_learner()
    old = history(1, 2)
    core.quorum_packet(conn, packet(wire.DIFF, old[-1][0]))
    for z, d in old:
        core.quorum_packet(conn, packet(wire.PROPOSAL, z, d))
        core.quorum_packet(conn, packet(wire.COMMIT, z))
    new = (make_zxid(2, 1), entry(9, make_zxid(2, 1)))
    core.quorum_packet(conn, packet(wire.PROPOSAL, *new))  # proposed, not committed yet
    core.quorum_packet(conn, packet(wire.NEWLEADER, make_zxid(2, 0)))
    fx = take(core)
    assert fx.persist == [AppendEntries([z for z, _ in old], [d for _, d in old]),
                          SetCurrentEpoch(2), AppendEntries([new[0]], [new[1]])]
    assert fx.sent(conn) == [] and fx.apply == []
    released = persist_all(core, fx)
    assert released.sent(conn) == [packet(wire.ACK, make_zxid(2, 0)), packet(wire.ACK, new[0])]


def test_learner_installs_a_snapshot_of_the_new_epoch_after_adopting_it():
    core, conn = synced_learner()
    z = make_zxid(2, 3)
    core.quorum_packet(conn, packet(wire.SNAP, z), b"db")
    core.quorum_packet(conn, packet(wire.NEWLEADER, make_zxid(2, 0)))
    assert take(core).persist == [SetCurrentEpoch(2), InstallSnapshot(z, b"db")]


def test_learner_installs_an_older_snapshot_before_adopting_the_epoch():
    core, conn = synced_learner()
    z = make_zxid(1, 3)
    core.quorum_packet(conn, packet(wire.SNAP, z), b"db")
    core.quorum_packet(conn, packet(wire.NEWLEADER, make_zxid(2, 0)))
    assert take(core).persist == [InstallSnapshot(z, b"db"), SetCurrentEpoch(2)]


def test_learner_truncates_its_uncommitted_tail():
    logged = history(1, 4)
    core, conn = synced_learner(DiskState(1, 1, 0, 0, logged))
    core.quorum_packet(conn, packet(wire.TRUNC, make_zxid(1, 2)))
    core.quorum_packet(conn, packet(wire.NEWLEADER, make_zxid(2, 0)))
    assert take(core).persist[0] == TruncateLog(make_zxid(1, 2))
    assert core.last_logged_zxid == make_zxid(1, 2) and core.applied == make_zxid(1, 2)


def test_learner_that_cannot_rewind_asks_for_a_snapshot_next_time():
    core, conn = synced_learner(DiskState(1, 1, make_zxid(1, 5), make_zxid(1, 5), []))
    core.quorum_packet(conn, packet(wire.TRUNC, make_zxid(1, 2)))  # before its snapshot
    assert core.role == Role.LOOKING and core.needs_snapshot


def test_learner_applies_and_serves_only_at_uptodate():
    core, conn = synced_learner()
    z = make_zxid(1, 1)
    core.quorum_packet(conn, packet(wire.DIFF, z))
    core.quorum_packet(conn, packet(wire.PROPOSAL, z, entry(1, z)))
    core.quorum_packet(conn, packet(wire.COMMIT, z))
    core.quorum_packet(conn, packet(wire.NEWLEADER, make_zxid(2, 0)))
    persist_all(core, take(core))
    assert not core.serving
    core.quorum_packet(conn, packet(wire.UPTODATE, -1))
    fx = take(core)
    assert [a for a, _ in fx.apply] == [z] and fx.serving == [True]
    assert fx.sent(conn) == [packet(wire.ACK, make_zxid(2, 0))]


def active_learner(**kw) -> tuple[PeerCore, int]:
    core, conn = synced_learner(**kw)
    core.quorum_packet(conn, packet(wire.DIFF, 0))
    core.quorum_packet(conn, packet(wire.NEWLEADER, make_zxid(2, 0)))
    persist_all(core, take(core))
    core.quorum_packet(conn, packet(wire.UPTODATE, -1))
    take(core)
    return core, conn


def test_follower_acks_a_proposal_once_it_is_durable():
    core, conn = active_learner()
    z = make_zxid(2, 1)
    core.quorum_packet(conn, packet(wire.PROPOSAL, z, entry(1, z)))
    fx = take(core)
    assert fx.persist == [AppendEntries([z], [entry(1, z)])] and fx.sent(conn) == []
    assert persist_all(core, fx).sent(conn) == [packet(wire.ACK, z)]


def test_follower_logs_the_proposals_of_one_read_together_and_acks_each_once_durable():
    core, conn = active_learner()
    zs = [make_zxid(2, i) for i in (1, 2, 3)]
    core.quorum_packets(conn, [(packet(wire.PROPOSAL, z, entry(i, z)), None) for i, z in enumerate(zs)])
    fx = take(core)
    assert fx.persist == [AppendEntries(zs, [entry(i, z) for i, z in enumerate(zs)])] and fx.sent(conn) == []
    released = persist_all(core, fx)
    assert released.sent(conn) == [packet(wire.ACK, z) for z in zs] and len(released.packets) == 1
    core.quorum_packets(conn, [(packet(wire.COMMIT, z), None) for z in zs])
    fx = take(core)
    assert fx.apply == [(z, entry(i, z)) for i, z in enumerate(zs)] and len(fx.readies) == 1


def test_follower_acks_proposals_logged_in_separate_batches_as_each_becomes_durable():
    core, conn = active_learner()
    z1, z2 = make_zxid(2, 1), make_zxid(2, 2)
    core.quorum_packet(conn, packet(wire.PROPOSAL, z1, entry(1, z1)))
    first = take(core)
    core.quorum_packet(conn, packet(wire.PROPOSAL, z2, entry(2, z2)))
    second = take(core)
    assert persist_all(core, first).sent(conn) == [packet(wire.ACK, z1)]
    assert persist_all(core, second).sent(conn) == [packet(wire.ACK, z2)]


def test_packets_to_a_connection_keep_their_order_around_encoded_ones():
    core, conn = active_learner()
    z = make_zxid(2, 1)
    core.quorum_packet(conn, packet(wire.PROPOSAL, z, entry(1, z)))
    fx = take(core)
    core.persisted(fx.tokens[-1])  # the ACK goes out encoded ...
    core.forward(b"write")  # ... then a REQUEST as a packet ...
    core.quorum_packet(conn, packet(wire.PING, 4))  # ... then the PING reply
    assert take(core).sent_types(conn) == ["ACK", "REQUEST", "PING"]


def test_follower_applies_on_commit():
    core, conn = active_learner()
    z = make_zxid(2, 1)
    core.quorum_packet(conn, packet(wire.PROPOSAL, z, entry(1, z)))
    assert take(core).apply == []
    core.quorum_packet(conn, packet(wire.COMMIT, z))
    assert take(core).apply == [(z, entry(1, z))]


def test_observer_logs_and_applies_what_it_is_informed_of():
    core, conn = make_learner(4, 3, DiskState(1, 1), voters=(1, 2, 3), observers=(4,))
    assert core.role == Role.OBSERVING
    assert take(core).sent(conn)[0].type == wire.OBSERVERINFO
    core.quorum_packet(conn, packet(wire.LEADERINFO, make_zxid(2, 0), wire.encode_int(0x10000)))
    persist_all(core, take(core))
    core.quorum_packet(conn, packet(wire.DIFF, 0))
    core.quorum_packet(conn, packet(wire.NEWLEADER, make_zxid(2, 0)))
    persist_all(core, take(core))
    core.quorum_packet(conn, packet(wire.UPTODATE, -1))
    take(core)
    z = make_zxid(2, 1)
    core.quorum_packet(conn, packet(wire.INFORM, z, entry(1, z)))
    fx = take(core)
    assert fx.apply == [(z, entry(1, z))] and fx.persist == [AppendEntries([z], [entry(1, z)])]
    assert persist_all(core, fx).sent(conn) == []  # observers never acknowledge


def test_follower_answers_pings_with_its_session_touches():
    core, conn = active_learner()
    core.touch(0x55, 6000)
    core.quorum_packet(conn, packet(wire.PING, 17))
    assert take(core).sent(conn) == [packet(wire.PING, 17, wire.encode_touches({0x55: 6000}))]


def test_follower_forwards_writes_and_reports_syncs_in_order():
    core, conn = active_learner()
    core.forward(b"write")
    core.sync("first", b"sync-1")
    core.sync("second", b"sync-2")
    assert take(core).sent(conn) == [packet(wire.REQUEST, -1, d) for d in (b"write", b"sync-1", b"sync-2")]
    core.quorum_packet(conn, packet(wire.SYNC, 0))
    assert take(core).syncs_done == ["first"]


def test_follower_leaves_a_silent_leader_after_sync_limit():
    core, _conn = active_learner()
    core.tick(core.now + 5 * 100 - 1)
    assert core.role == Role.FOLLOWING
    core.tick(core.now + 2)
    assert core.role == Role.LOOKING


def test_learner_retries_the_connection_until_init_limit():
    core, conn = make_learner(1, 3)
    take(core)
    core.quorum_closed(conn)  # refused: the leader is not listening yet
    core.tick(core.now + 100)
    (again,) = take(core).connect
    assert again.sid == 3 and again.conn != conn
    core.quorum_closed(again.conn)
    core.tick(core.now + 10 * 100)
    assert core.role == Role.LOOKING


# ---------------------------------------------------------------------- the member


def test_member_adopts_the_epoch_of_its_log_when_the_epoch_file_lags():
    disk = DiskState(accepted_epoch=2, current_epoch=0, entries=history(1, 2))
    core = PeerCore(peer(1).config, disk)
    assert core.current_epoch == 1
    assert take(core).persist == [SetCurrentEpoch(1)]


def test_member_votes_with_its_epoch_and_last_logged_zxid():
    core = PeerCore(peer(2).config, DiskState(3, 3, 0, 0, history(3, 4)))
    first = take(core).election[0][1]
    assert (first.leader, first.zxid, first.peer_epoch) == (2, make_zxid(3, 4), 3)


def test_nothing_is_applied_after_a_snapshot_in_the_same_ready():
    logged = history(1, 3)
    core = PeerCore(peer(3).config, DiskState(1, 1, 0, 0, logged[:1]))
    take(core)
    core.history.append(*logged[1])
    core.send(10, packet(wire.SNAP, logged[0][0]), with_snapshot=True)
    core.apply_to(logged[1][0])  # committed after the snapshot was queued
    first, second = take(core).readies
    assert [o.with_snapshot for o in first.packets] == [True] and first.apply == []
    assert [z for z, _ in second.apply] == [logged[1][0]]


def test_leader_reports_its_followers_and_proposals_for_metrics():
    core, _conn = established_leader()
    core.propose(entry(1))
    stats = core.stats()
    assert (stats["role"], stats["phase"], stats["synced_followers"], stats["pending_proposals"]) == (
        "leading", "broadcast", 1, 1)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["append", "between", "between", "trim", "truncate"]),
                                st.integers(0, 40), st.integers(0, 40)), max_size=60))
def test_history_between_agrees_with_a_plain_filter_whatever_came_before(steps) -> None:
    # between() resumes where the previous call stopped; appends, trims and rewinds in between
    # must never make it answer differently from a filter over what the history holds.
    h = History(0, 0, limit=4)
    held: list[int] = []
    for action, a, b in steps:
        if action == "append":
            z = (held[-1] if held else h.base) + 1 + a % 3
            h.append(z, entry(z))
            held.append(z)
        elif action == "trim":
            h.trim(keep_after=a)
            held = [z for z in held if z > h.base]
        elif action == "truncate" and held:
            to = max(h.floor, min(held[-1], a))
            h.truncate(to)
            held = [z for z in held if z <= to and z > h.base]
        elif action == "between":
            lo = max(h.base, min(a, b))
            hi = max(a, b)
            expected = [z for z in held if lo < z <= hi]
            assert [z for z, _ in h.between(lo, hi)] == expected
            assert [e for _, e in h.between(lo, hi)] == [entry(z) for z in expected]
            if expected:  # the usual next call: the range right after the last one
                nxt = [z for z in held if expected[-1] < z <= expected[-1] + b]
                assert [z for z, _ in h.between(expected[-1], expected[-1] + b)] == nxt
