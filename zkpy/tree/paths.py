"""Znode path rules (``PathUtils.validatePath``) and path arithmetic."""

from __future__ import annotations


class InvalidPathError(ValueError):
    """A path that ZooKeeper's PathUtils.validatePath refuses."""


def _invalid_char(c: str) -> bool:
    o = ord(c)
    # Java checks UTF-16 code units: anything outside the BMP is a surrogate pair there.
    return (
        0 < o <= 0x1F
        or 0x7F <= o <= 0x9F
        or 0xD800 <= o <= 0xF8FF
        or 0xFFF0 <= o
    )


def validate_path(path: str | None) -> None:
    """Raise InvalidPathError with ZooKeeper's reason when ``path`` is not a valid znode path."""
    if path is None:
        raise InvalidPathError("Path cannot be null")
    if not path:
        raise InvalidPathError("Path length must be > 0")
    if path[0] != "/":
        raise InvalidPathError("Path must start with / character")
    n = len(path)
    if n == 1:
        return
    if path[-1] == "/":
        raise InvalidPathError("Path must not end with / character")
    reason = None
    last = "/"
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
        elif _invalid_char(c):
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


def split_path(path: str) -> tuple[str, str]:
    """(parent, name) of an absolute path; the parent of a top-level node is "/"."""
    i = path.rfind("/")
    parent = path[:i] or "/"
    return parent, path[i + 1 :]


def parent_of(path: str) -> str:
    return path[: path.rfind("/")] or "/"


def join(parent: str, name: str) -> str:
    return ("/" + name) if parent == "/" else f"{parent}/{name}"
