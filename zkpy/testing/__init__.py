"""Test ZooKeeper code against a real zkpy server, from Python, without Java.

    from zkpy.testing import zk_server

    with zk_server() as srv:          # a throw-away server: temp data dir, free port
        client = KazooClient(hosts=srv.hosts)
        ...
        srv.restart()                 # stop (SIGTERM) and start again, same port, same data
        srv.expire_session(sid, pw)   # the client sees SESSION_EXPIRED on its next reconnect

With pytest, the plugin this package registers gives fixtures: ``zk_server``, ``zk_client``
(a connected kazoo client), ``zk_server_factory`` and ``zk_ensemble`` (see docs/testing.md).
"""

from zkpy.testing.ensemble import EnsembleUnavailable, ZkEnsemble, zk_ensemble
from zkpy.testing.server import ServerStartError, ZkServer, four_letter_word, free_port, zk_server
from zkpy.testing.sessions import expire_session

__all__ = [
    "EnsembleUnavailable",
    "ServerStartError",
    "ZkEnsemble",
    "ZkServer",
    "expire_session",
    "four_letter_word",
    "free_port",
    "zk_ensemble",
    "zk_server",
]
