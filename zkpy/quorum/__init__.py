"""Quorum mode: leader election and ZAB as pure state machines, their simulator, and the
asyncio driver and peer transport that run them.

- ``peer.PeerCore`` (with ``election``, ``leader``, ``learner``, ``history``): the consensus
  core; inputs are method calls, outputs are ``effects.Ready`` batches.
- ``sim``: deterministic simulation with faults and invariant checks
  (``python -m zkpy.quorum.sim --seed N``).
- ``wire`` / ``snapwire``: Apache ZooKeeper's election and learner protocols, and the
  database as a SNAP streams it.
- ``transport``, ``disk``, ``driver``: sockets, the data directory, and the loop that ties
  them to a core; ``demo``: a harness process running one member.
"""
