"""Fast leader election (``FastLeaderElection.lookForLeader``) as a state machine.

A member that is LOOKING proposes itself (its current epoch, last logged zxid and
id), adopts any better proposal it hears in the same round, and decides once a
quorum of voters agrees and nothing better arrives within ``finalize_wait_ms``.
A member that hears FOLLOWING / LEADING votes from a quorum that includes the
leader itself joins that leader without a round of its own.  Members that are
not looking answer a looking member with the vote they followed.

No clocks or sockets here: the owner feeds notifications and ticks, and collects
what to send from :attr:`Election.outbox`.
"""

from __future__ import annotations

from dataclasses import dataclass

from zkpy.quorum.wire import FOLLOWING, LEADING, LOOKING, NO_VOTE, OBSERVING, Notification


@dataclass(slots=True, frozen=True)
class Vote:
    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    state: int = LOOKING

    def matches(self, other: Vote) -> bool:
        """Vote.equals: in-election votes agree on everything, settled ones on (leader, epoch)."""
        if self.state == LOOKING or other.state == LOOKING:
            return (self.leader == other.leader and self.zxid == other.zxid
                    and self.election_epoch == other.election_epoch and self.peer_epoch == other.peer_epoch)
        return self.leader == other.leader and self.peer_epoch == other.peer_epoch


def better(new_leader: int, new_zxid: int, new_epoch: int, cur_leader: int, cur_zxid: int, cur_epoch: int) -> bool:
    """totalOrderPredicate: (peer epoch, zxid, id) compared in that order."""
    if new_epoch != cur_epoch:
        return new_epoch > cur_epoch
    if new_zxid != cur_zxid:
        return new_zxid > cur_zxid
    return new_leader > cur_leader


class Election:
    """One member's view of leader election; the logical clock lives as long as the member."""

    __slots__ = ("_finalize_at", "_init", "_last_heard_ms", "_not_timeout_ms", "config", "current",
                 "finalize_wait_ms", "logical_clock", "looking", "max_interval_ms", "min_interval_ms",
                 "my_id", "outbox", "outofelection", "proposal", "recvset", "voters")

    def __init__(self, my_id: int, voters: frozenset[int], *, finalize_wait_ms: int = 200,
                 min_interval_ms: int = 200, max_interval_ms: int = 60_000, config: bytes = b"") -> None:
        self.my_id = my_id
        self.voters = voters
        self.finalize_wait_ms = finalize_wait_ms
        self.min_interval_ms = min_interval_ms
        self.max_interval_ms = max_interval_ms
        self.config = config
        self.logical_clock = 0
        self.looking = False
        self.proposal = (NO_VOTE, NO_VOTE, NO_VOTE)  # (leader, zxid, peer epoch)
        self._init = self.proposal
        self.recvset: dict[int, Vote] = {}
        self.outofelection: dict[int, Vote] = {}
        # The vote this member settled on, with its state (FOLLOWING / LEADING / OBSERVING).
        self.current = Vote(NO_VOTE, NO_VOTE, 0, NO_VOTE, LOOKING)
        self.outbox: list[tuple[int, Notification]] = []
        self._finalize_at: int | None = None
        self._not_timeout_ms = min_interval_ms
        self._last_heard_ms = 0

    @property
    def is_voter(self) -> bool:
        return self.my_id in self.voters

    # ------------------------------------------------------------------ inputs

    def start(self, now_ms: int, last_zxid: int, current_epoch: int) -> Vote | None:
        """Begin a new round (lookForLeader)."""
        self.looking = True
        self.logical_clock += 1
        self.recvset = {}
        self.outofelection = {}
        self._finalize_at = None
        self._not_timeout_ms = self.min_interval_ms
        self._last_heard_ms = now_ms
        if self.is_voter:
            self._init = (self.my_id, last_zxid, current_epoch)
        else:
            self._init = (NO_VOTE, NO_VOTE, NO_VOTE)
        self.proposal = self._init
        self.current = Vote(self.proposal[0], self.proposal[1], self.logical_clock, self.proposal[2], LOOKING)
        return self._send_notifications(now_ms)

    def receive(self, sid: int, n: Notification, now_ms: int) -> Vote | None:
        """A notification from ``sid``; returns the final vote when this decides the election."""
        if sid not in self.voters:
            # A non-voter (observer) asks who leads: answer at once with what we hold.
            self.outbox.append((sid, self._my_notification()))
            return None
        if n.state not in (LOOKING, FOLLOWING, LEADING, OBSERVING):
            return None
        if not self.looking:
            if n.state == LOOKING:
                self.outbox.append((sid, self._my_notification()))
            return None
        lagging = n.state == LOOKING and n.election_epoch < self.logical_clock
        self._last_heard_ms = now_ms
        result = self._look(sid, n, now_ms)
        if lagging and result is None:
            # The sender is in an older round: tell it ours so it catches up.
            self.outbox.append((sid, self._my_notification()))
        return result

    def tick(self, now_ms: int) -> Vote | None:
        if not self.looking:
            return None
        if self._finalize_at is not None and now_ms >= self._finalize_at:
            return self._decide(self.proposal[0], self.proposal[1], self.logical_clock, self.proposal[2])
        if now_ms - self._last_heard_ms >= self._not_timeout_ms:
            # Nothing heard for a while: say it again, and wait longer next time.
            self._last_heard_ms = now_ms
            self._not_timeout_ms = min(self._not_timeout_ms * 2, self.max_interval_ms)
            return self._send_notifications(now_ms)
        return None

    def peer_connected(self, sid: int) -> None:
        """A (re)connected election channel gets our current notification, as
        QuorumCnxManager resends the last message on a new connection."""
        if self.looking and sid != self.my_id and sid in self.voters:
            self.outbox.append((sid, self._my_notification()))

    def settle(self, leader: int, zxid: int, peer_epoch: int, state: int) -> None:
        """Record the vote this member now follows (the owner's role changed)."""
        self.looking = False
        self._finalize_at = None
        self.current = Vote(leader, zxid, self.logical_clock, peer_epoch, state)

    def update_peer_epoch(self, epoch: int) -> None:
        """updateElectionVote: after syncing, report the new epoch to late joiners."""
        c = self.current
        self.current = Vote(c.leader, c.zxid, c.election_epoch, epoch, c.state)

    def next_deadline(self) -> int | None:
        if not self.looking:
            return None
        timeout = self._last_heard_ms + self._not_timeout_ms
        if self._finalize_at is not None:
            return min(timeout, self._finalize_at)
        return timeout

    # ------------------------------------------------------------------ the round

    def _my_notification(self) -> Notification:
        if self.looking:
            leader, zxid, epoch = self.proposal
            return Notification(LOOKING, leader, zxid, self.logical_clock, epoch, config=self.config)
        c = self.current
        return Notification(c.state, c.leader, c.zxid, c.election_epoch, c.peer_epoch, config=self.config)

    def _proposal_vote(self) -> Vote:
        leader, zxid, epoch = self.proposal
        return Vote(leader, zxid, self.logical_clock, epoch)

    def _send_notifications(self, now_ms: int) -> Vote | None:
        n = self._my_notification()
        for sid in sorted(self.voters):
            if sid != self.my_id:
                self.outbox.append((sid, n))
        if self.is_voter:
            # Our own notification reaches us at once (QuorumCnxManager loops it back).
            self.recvset[self.my_id] = self._proposal_vote()
            self._check_quorum(now_ms)
        return None

    def _quorum(self, sids: int) -> bool:
        return sids * 2 > len(self.voters)

    def _agreeing(self, votes: dict[int, Vote], vote: Vote) -> int:
        return sum(1 for sid, v in votes.items() if sid in self.voters and v.matches(vote))

    def _check_quorum(self, now_ms: int) -> None:
        if self._finalize_at is None and self._quorum(self._agreeing(self.recvset, self._proposal_vote())):
            self._finalize_at = now_ms + self.finalize_wait_ms

    def _is_better(self, n: Notification) -> bool:
        if n.leader not in self.voters:
            return False
        leader, zxid, epoch = self.proposal
        return better(n.leader, n.zxid, n.peer_epoch, leader, zxid, epoch)

    def _look(self, sid: int, n: Notification, now_ms: int) -> Vote | None:
        if n.leader not in self.voters:
            return None  # a vote for a non-member counts for nothing
        if self._finalize_at is not None:
            if not self._is_better(n):
                return None  # lookForLeader drops what cannot change its mind while it settles
            self._finalize_at = None
        if n.state == LOOKING:
            if n.zxid == -1:
                return None
            if n.election_epoch > self.logical_clock:
                self.logical_clock = n.election_epoch
                self.recvset = {}
                i_leader, i_zxid, i_epoch = self._init
                if self._init[0] != NO_VOTE and not better(n.leader, n.zxid, n.peer_epoch, i_leader, i_zxid, i_epoch):
                    self.proposal = self._init
                else:
                    self.proposal = (n.leader, n.zxid, n.peer_epoch)
                self._send_notifications(now_ms)
            elif n.election_epoch < self.logical_clock:
                return None
            elif self._is_better(n):
                self.proposal = (n.leader, n.zxid, n.peer_epoch)
                self._send_notifications(now_ms)
            self.recvset[sid] = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
            self._check_quorum(now_ms)
            return None
        if n.state == OBSERVING:
            return None
        # FOLLOWING or LEADING: someone has settled.
        vote = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch, n.state)
        if n.election_epoch == self.logical_clock:
            self.recvset[sid] = vote
            if self._quorum(self._agreeing(self.recvset, vote)) and self._check_leader(self.recvset, n.leader,
                                                                                       n.election_epoch):
                return self._decide(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        self.outofelection[sid] = vote
        if self._quorum(self._agreeing(self.outofelection, vote)) and self._check_leader(
                self.outofelection, n.leader, n.election_epoch):
            self.logical_clock = n.election_epoch
            return self._decide(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        return None

    def _check_leader(self, votes: dict[int, Vote], leader: int, election_epoch: int) -> bool:
        """checkLeader: follow a leader only on its own word that it leads."""
        if leader != self.my_id:
            v = votes.get(leader)
            return v is not None and v.state == LEADING
        return self.logical_clock == election_epoch

    def _decide(self, leader: int, zxid: int, election_epoch: int, peer_epoch: int) -> Vote:
        self.looking = False
        self._finalize_at = None
        if leader == self.my_id:
            state = LEADING
        else:
            state = FOLLOWING if self.is_voter else OBSERVING
        self.current = Vote(leader, zxid, election_epoch, peer_epoch, state)
        return self.current
