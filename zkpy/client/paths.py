"""Client-side path checks and the chroot, as ZooKeeper's Java client applies them.

``validate_path`` mirrors ``PathUtils.validatePath``: the Java client refuses a bad path
before anything is sent, so a caller sees ``ValueError`` (Java's IllegalArgumentException)
and the server never gets the request.
"""

from __future__ import annotations

import re

__all__ = ["Chroot", "validate_path"]


def _bad_char(c: str) -> bool:
    o = ord(c)
    # Java checks UTF-16 code units: surrogates (so every non-BMP character), the
    # private-use area and the specials block are all refused.
    return (
        0 < o <= 0x1F
        or 0x7F <= o <= 0x9F
        or 0xD800 <= o <= 0xF8FF
        or 0xFFF0 <= o
    )


# Every well-formed path, for a fast yes; anything else goes through the loop below, which
# finds the reason (and the position) the way PathUtils reports it.
_GOOD = re.compile(
    r"(?:/(?!\.\.?(?:/|$))[^/\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]+)+|/"
)


def validate_path(path: str, sequential: bool = False) -> None:
    """Raise ValueError, with the Java client's message, when ``path`` is not a znode path.

    A sequential create gets a suffix from the server, so "/a/" is fine then (checked as "/a/1").
    """
    if path.__class__ is str and _GOOD.fullmatch(path) is not None:
        return
    if path is None:
        raise ValueError("Path cannot be null")
    if sequential:
        path = path + "1"
    if len(path) == 0:
        raise ValueError("Path length must be > 0")
    if path[0] != "/":
        raise ValueError("Path must start with / character")
    if len(path) == 1:
        return
    if path[-1] == "/":
        raise ValueError("Path must not end with / character")
    reason = None
    last = "/"
    n = len(path)
    for i in range(1, n):
        c = path[i]
        if c == "\0":
            reason = f"null character not allowed @{i}"
        elif c == "/" and last == "/":
            reason = f"empty node name specified @{i}"
        elif c == "." and last == ".":
            if path[i - 2] == "/" and (i + 1 == n or path[i + 1] == "/"):
                reason = f"relative paths not allowed @{i}"
        elif c == ".":
            if path[i - 1] == "/" and (i + 1 == n or path[i + 1] == "/"):
                reason = f"relative paths not allowed @{i}"
        elif _bad_char(c):
            reason = f"invalid character @{i}"
        if reason is not None:
            raise ValueError(f'Invalid path string "{path}" caused by {reason}')
        last = c


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
