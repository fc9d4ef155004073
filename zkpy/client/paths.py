"""Client-side path checks and the chroot, as ZooKeeper's Java client applies them.

``validate_path`` mirrors ``PathUtils.validatePath``: the Java client refuses a bad path
before anything is sent, so a caller sees ``ValueError`` (Java's IllegalArgumentException)
and the server never gets the request.
"""

from __future__ import annotations

from zkpy.proto.paths import InvalidPathError, validate_path

__all__ = ["Chroot", "InvalidPathError", "validate_path"]


class Chroot:
    """Maps client paths to server paths and back for a connect string's "/app" suffix.

    An empty chroot (no suffix, or "/") maps every path to itself.
    """

    __slots__ = ("prefix",)

    def __init__(self, prefix: str | None) -> None:
        if prefix in (None, "", "/"):
            self.prefix = ""
        else:
            validate_path(prefix)
            self.prefix = prefix

    def __bool__(self) -> bool:
        return bool(self.prefix)

    def to_server(self, client_path: str) -> str:
        if not self.prefix:
            return client_path
        if client_path == "/":
            return self.prefix
        return self.prefix + client_path

    def to_client(self, server_path: str) -> str:
        """Strip the chroot from a path the server sent (event, created node, ephemeral)."""
        prefix = self.prefix
        if not prefix or server_path is None:
            return server_path
        if server_path == prefix:
            return "/"
        if len(server_path) > len(prefix) and server_path.startswith(prefix):
            return server_path[len(prefix):]
        # The Java client logs and keeps a path too short for the chroot; do the same.
        return server_path
