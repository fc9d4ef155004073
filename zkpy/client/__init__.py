"""zkpy's asyncio ZooKeeper client.

    from zkpy.client import ZooKeeperClient, run

    async def main():
        async with ZooKeeperClient("127.0.0.1:2181/app") as zk:
            await zk.create("/x", b"hello")
            data, stat = await zk.get_data("/x", watch=print)

    run(main())          # on uvloop when it is installed
"""

from zkpy.client.acl import (
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    digest_acl,
    digest_id,
)
from zkpy.client.client import Transaction, ZooKeeperClient, connect
from zkpy.client.events import ClientState, EventQueue, WatchedEvent, Watcher
from zkpy.client.hosts import parse_connect_string
from zkpy.client.loop import new_event_loop, run
from zkpy.client.ops import (
    Check,
    CheckResult,
    Create,
    CreateResult,
    Delete,
    DeleteResult,
    ErrorResult,
    GetChildren,
    GetChildrenResult,
    GetData,
    GetDataResult,
    Op,
    OpResult,
    SetData,
    SetDataResult,
)
from zkpy.client.paths import validate_path
from zkpy.proto.constants import AddWatchMode, CreateMode, EventType, KeeperState, Perms, WatcherType
from zkpy.proto.records import ACL, Id, Stat

__all__ = [
    "ACL",
    "CREATOR_ALL_ACL",
    "OPEN_ACL_UNSAFE",
    "READ_ACL_UNSAFE",
    "AddWatchMode",
    "Check",
    "CheckResult",
    "ClientState",
    "Create",
    "CreateMode",
    "CreateResult",
    "Delete",
    "DeleteResult",
    "ErrorResult",
    "EventQueue",
    "EventType",
    "GetChildren",
    "GetChildrenResult",
    "GetData",
    "GetDataResult",
    "Id",
    "KeeperState",
    "Op",
    "OpResult",
    "Perms",
    "SetData",
    "SetDataResult",
    "Stat",
    "Transaction",
    "WatchedEvent",
    "Watcher",
    "WatcherType",
    "ZooKeeperClient",
    "connect",
    "digest_acl",
    "digest_id",
    "new_event_loop",
    "parse_connect_string",
    "run",
    "validate_path",
]
