"""ZooKeeper's error codes (``KeeperException.Code``) as exception classes."""

from __future__ import annotations

from typing import ClassVar


class ZooKeeperError(Exception):
    """A ZooKeeper error code; subclasses carry the code and the Java exception's message."""

    code: ClassVar[int] = -1
    message: ClassVar[str] = "SystemError"

    def __init__(self, path: str | None = None, detail: str | None = None) -> None:
        self.path = path
        self.detail = detail
        text = f"KeeperErrorCode = {self.message}"
        if path:
            text += f" for {path}"
        if detail:
            text += f": {detail}"
        super().__init__(text)


_BY_CODE: dict[int, type[ZooKeeperError]] = {}


def _define(name: str, code: int, message: str) -> type[ZooKeeperError]:
    cls = type(name, (ZooKeeperError,), {"code": code, "message": message, "__module__": __name__})
    _BY_CODE[code] = cls
    return cls


SystemError_ = _define("SystemError_", -1, "SystemError")
RuntimeInconsistencyError = _define("RuntimeInconsistencyError", -2, "RuntimeInconsistency")
DataInconsistencyError = _define("DataInconsistencyError", -3, "DataInconsistency")
ConnectionLossError = _define("ConnectionLossError", -4, "ConnectionLoss")
MarshallingError = _define("MarshallingError", -5, "MarshallingError")
UnimplementedError = _define("UnimplementedError", -6, "Unimplemented")
OperationTimeoutError = _define("OperationTimeoutError", -7, "OperationTimeout")
BadArgumentsError = _define("BadArgumentsError", -8, "BadArguments")
UnknownSessionError = _define("UnknownSessionError", -12, "Unknown error -12")
NewConfigNoQuorumError = _define("NewConfigNoQuorumError", -13, "NewConfigNoQuorum")
ReconfigInProgressError = _define("ReconfigInProgressError", -14, "ReconfigInProgress")
APIError = _define("APIError", -100, "APIError")
NoNodeError = _define("NoNodeError", -101, "NoNode")
NoAuthError = _define("NoAuthError", -102, "NoAuth")
BadVersionError = _define("BadVersionError", -103, "BadVersion")
NoChildrenForEphemeralsError = _define("NoChildrenForEphemeralsError", -108, "NoChildrenForEphemerals")
NodeExistsError = _define("NodeExistsError", -110, "NodeExists")
NotEmptyError = _define("NotEmptyError", -111, "Directory not empty")
SessionExpiredError = _define("SessionExpiredError", -112, "Session expired")
InvalidCallbackError = _define("InvalidCallbackError", -113, "Invalid callback")
InvalidACLError = _define("InvalidACLError", -114, "InvalidACL")
AuthFailedError = _define("AuthFailedError", -115, "AuthFailed")
SessionMovedError = _define("SessionMovedError", -118, "Session moved")
NotReadOnlyError = _define("NotReadOnlyError", -119, "Not a read-only call")
EphemeralOnLocalSessionError = _define("EphemeralOnLocalSessionError", -120, "Ephemeral node on local session")
NoWatcherError = _define("NoWatcherError", -121, "No such watcher")
RequestTimeoutError = _define("RequestTimeoutError", -122, "Unknown error -122")
ReconfigDisabledError = _define("ReconfigDisabledError", -123, "Reconfig is disabled")
SessionClosedRequireSaslAuthError = _define(
    "SessionClosedRequireSaslAuthError", -124, "Session closed because client failed to authenticate"
)
QuotaExceededError = _define("QuotaExceededError", -125, "Quota has exceeded")
ThrottledError = _define("ThrottledError", -127, "Op throttled due to high load")


def error_for_code(code: int, path: str | None = None) -> ZooKeeperError:
    """The exception for a wire error code (an unknown code becomes a plain ZooKeeperError)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        err = ZooKeeperError(path, f"unknown error code {code}")
        return err
    return cls(path)


def error_class(code: int) -> type[ZooKeeperError] | None:
    return _BY_CODE.get(code)
