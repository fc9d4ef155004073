"""Znode path arithmetic (validation lives in zkpy.proto.paths)."""

from __future__ import annotations

from zkpy.proto.paths import InvalidPathError, is_valid_path, validate_path

__all__ = ["InvalidPathError", "is_valid_path", "join", "parent_of", "split_path", "validate_path"]


def split_path(path: str) -> tuple[str, str]:
    """(parent, name) of an absolute path; the parent of a top-level node is "/"."""
    i = path.rfind("/")
    parent = path[:i] or "/"
    return parent, path[i + 1 :]


def parent_of(path: str) -> str:
    return path[: path.rfind("/")] or "/"


def join(parent: str, name: str) -> str:
    return ("/" + name) if parent == "/" else f"{parent}/{name}"
