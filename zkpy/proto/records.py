"""Every jute record of ZooKeeper 3.8, mirroring ``zookeeper.jute`` field for field.

Records that are not plain jute (ConnectRequest's optional trailing bool, the
multi request/response framing) are built on top of these in ``multi.py`` and
``connect.py``.
"""

from __future__ import annotations

from zkpy.proto.jute import Bool, Buffer, Int, Long, Record, UString, Vector, record

# ---------------------------------------------------------------- org.apache.zookeeper.data


@record
class Id(Record):
    scheme: UString
    id: UString


@record
class ACL(Record):
    perms: Int
    id: Id


@record
class Stat(Record):
    czxid: Long
    mzxid: Long
    ctime: Long
    mtime: Long
    version: Int
    cversion: Int
    aversion: Int
    ephemeralOwner: Long
    dataLength: Int
    numChildren: Int
    pzxid: Long


@record
class StatPersisted(Record):
    czxid: Long
    mzxid: Long
    ctime: Long
    mtime: Long
    version: Int
    cversion: Int
    aversion: Int
    ephemeralOwner: Long
    pzxid: Long


@record
class ClientInfo(Record):
    authScheme: UString
    user: UString


# ---------------------------------------------------------------- org.apache.zookeeper.proto


@record
class ConnectRequest(Record):
    protocolVersion: Int
    lastZxidSeen: Long
    timeOut: Int
    sessionId: Long
    passwd: Buffer


@record
class ConnectResponse(Record):
    protocolVersion: Int
    timeOut: Int
    sessionId: Long
    passwd: Buffer


@record
class SetWatches(Record):
    relativeZxid: Long
    dataWatches: Vector[UString]
    existWatches: Vector[UString]
    childWatches: Vector[UString]


@record
class SetWatches2(Record):
    relativeZxid: Long
    dataWatches: Vector[UString]
    existWatches: Vector[UString]
    childWatches: Vector[UString]
    persistentWatches: Vector[UString]
    persistentRecursiveWatches: Vector[UString]


@record
class RequestHeader(Record):
    xid: Int
    type: Int


@record
class MultiHeader(Record):
    type: Int
    done: Bool
    err: Int


@record
class AuthPacket(Record):
    type: Int
    scheme: UString
    auth: Buffer


@record
class ReplyHeader(Record):
    xid: Int
    zxid: Long
    err: Int


@record
class GetDataRequest(Record):
    path: UString
    watch: Bool


@record
class SetDataRequest(Record):
    path: UString
    data: Buffer
    version: Int


@record
class ReconfigRequest(Record):
    joiningServers: UString
    leavingServers: UString
    newMembers: UString
    curConfigId: Long


@record
class SetDataResponse(Record):
    stat: Stat


@record
class GetSASLRequest(Record):
    token: Buffer


@record
class SetSASLRequest(Record):
    token: Buffer


@record
class SetSASLResponse(Record):
    token: Buffer


@record
class CreateRequest(Record):
    path: UString
    data: Buffer
    acl: Vector[ACL]
    flags: Int


@record
class CreateTTLRequest(Record):
    path: UString
    data: Buffer
    acl: Vector[ACL]
    flags: Int
    ttl: Long


@record
class DeleteRequest(Record):
    path: UString
    version: Int


@record
class GetChildrenRequest(Record):
    path: UString
    watch: Bool


@record
class GetAllChildrenNumberRequest(Record):
    path: UString


@record
class GetChildren2Request(Record):
    path: UString
    watch: Bool


@record
class CheckVersionRequest(Record):
    path: UString
    version: Int


@record
class GetMaxChildrenRequest(Record):
    path: UString


@record
class GetMaxChildrenResponse(Record):
    max: Int


@record
class SetMaxChildrenRequest(Record):
    path: UString
    max: Int


@record
class SyncRequest(Record):
    path: UString


@record
class SyncResponse(Record):
    path: UString


@record
class GetACLRequest(Record):
    path: UString


@record
class SetACLRequest(Record):
    path: UString
    acl: Vector[ACL]
    version: Int


@record
class SetACLResponse(Record):
    stat: Stat


@record
class AddWatchRequest(Record):
    path: UString
    mode: Int


@record
class WatcherEvent(Record):
    type: Int
    state: Int
    path: UString


@record
class ErrorResponse(Record):
    err: Int


@record
class CreateResponse(Record):
    path: UString


@record
class Create2Response(Record):
    path: UString
    stat: Stat


@record
class ExistsRequest(Record):
    path: UString
    watch: Bool


@record
class ExistsResponse(Record):
    stat: Stat


@record
class GetDataResponse(Record):
    data: Buffer
    stat: Stat


@record
class GetChildrenResponse(Record):
    children: Vector[UString]


@record
class GetAllChildrenNumberResponse(Record):
    totalNumber: Int


@record
class GetChildren2Response(Record):
    children: Vector[UString]
    stat: Stat


@record
class GetACLResponse(Record):
    acl: Vector[ACL]
    stat: Stat


@record
class CheckWatchesRequest(Record):
    path: UString
    type: Int


@record
class RemoveWatchesRequest(Record):
    path: UString
    type: Int


@record
class GetEphemeralsRequest(Record):
    prefixPath: UString


@record
class GetEphemeralsResponse(Record):
    ephemerals: Vector[UString]


@record
class WhoAmIResponse(Record):
    clientInfo: Vector[ClientInfo]


# ---------------------------------------------------------------- org.apache.zookeeper.server.quorum


@record
class LearnerInfo(Record):
    serverid: Long
    protocolVersion: Int
    configVersion: Long


@record
class QuorumPacket(Record):
    type: Int
    zxid: Long
    data: Buffer
    authinfo: Vector[Id]


@record
class QuorumAuthPacket(Record):
    magic: Long
    status: Int
    token: Buffer


# ---------------------------------------------------------------- org.apache.zookeeper.server.persistence


@record
class FileHeader(Record):
    magic: Int
    version: Int
    dbid: Long


# ---------------------------------------------------------------- org.apache.zookeeper.txn


@record
class TxnDigest(Record):
    version: Int
    treeDigest: Long


@record
class TxnHeader(Record):
    clientId: Long
    cxid: Int
    zxid: Long
    time: Long
    type: Int


@record
class CreateTxnV0(Record):
    path: UString
    data: Buffer
    acl: Vector[ACL]
    ephemeral: Bool


@record
class CreateTxn(Record):
    path: UString
    data: Buffer
    acl: Vector[ACL]
    ephemeral: Bool
    parentCVersion: Int


@record
class CreateTTLTxn(Record):
    path: UString
    data: Buffer
    acl: Vector[ACL]
    parentCVersion: Int
    ttl: Long


@record
class CreateContainerTxn(Record):
    path: UString
    data: Buffer
    acl: Vector[ACL]
    parentCVersion: Int


@record
class DeleteTxn(Record):
    path: UString


@record
class SetDataTxn(Record):
    path: UString
    data: Buffer
    version: Int


@record
class CheckVersionTxn(Record):
    path: UString
    version: Int


@record
class SetACLTxn(Record):
    path: UString
    acl: Vector[ACL]
    version: Int


@record
class SetMaxChildrenTxn(Record):
    path: UString
    max: Int


@record
class CreateSessionTxn(Record):
    timeOut: Int


@record
class CloseSessionTxn(Record):
    paths2Delete: Vector[UString]


@record
class ErrorTxn(Record):
    err: Int


@record
class Txn(Record):
    type: Int
    data: Buffer


@record
class MultiTxn(Record):
    txns: Vector[Txn]
