"""Errors of the storage layer.  Every message names the file (and offset) at fault."""

from __future__ import annotations

from pathlib import Path


class StorageError(Exception):
    """A data or log directory cannot be used as it is."""


class CorruptLogError(StorageError):
    """A transaction log record fails its checksum or cannot be parsed."""

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        self.path = Path(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"{reason} in {self.path} at offset {offset}")


class CorruptSnapshotError(StorageError):
    """A snapshot file is truncated, has a bad checksum or is malformed."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"invalid snapshot {self.path}: {reason}")


class UnrecoverableError(StorageError):
    """The data directory does not hold a consistent history (gap, corruption, ...)."""
