"""Znode path rules: ZooKeeper's ``PathUtils.validatePath``, shared by the client and the server."""

from __future__ import annotations

import re

__all__ = ["VALID_PATH", "InvalidPathError", "is_valid_path", "validate_path"]


class InvalidPathError(ValueError):
    """A path that PathUtils.validatePath refuses (Java's IllegalArgumentException)."""


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
# Public name of the fast check: a full match means the path is valid.
VALID_PATH = _GOOD


def validate_path(path: str | None, sequential: bool = False) -> None:
    """Raise InvalidPathError, with ZooKeeper's message, when ``path`` is not a znode path.

    A sequential create gets a suffix from the server, so "/a/" is fine then (checked as "/a/1").
    """
    if path.__class__ is str and _GOOD.fullmatch(path) is not None:
        return
    if path is None:
        raise InvalidPathError("Path cannot be null")
    if sequential:
        path = path + "1"
    if len(path) == 0:
        raise InvalidPathError("Path length must be > 0")
    if path[0] != "/":
        raise InvalidPathError("Path must start with / character")
    if len(path) == 1:
        return
    if path[-1] == "/":
        raise InvalidPathError("Path must not end with / character")
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
            raise InvalidPathError(f'Invalid path string "{path}" caused by {reason}')
        last = c


def is_valid_path(path: str | None) -> bool:
    try:
        validate_path(path)
    except InvalidPathError:
        return False
    return True
