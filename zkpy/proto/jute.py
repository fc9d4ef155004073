"""Jute, ZooKeeper's binary serialization, derived from one schema per record.

A record is declared once as a class whose annotations name jute types
(``Int``, ``Long``, ``Bool``, ``Buffer``, ``UString``, ``Vector[T]`` or another
record).  The :func:`record` decorator turns it into a slotted dataclass and
compiles two functions for it, ``encode_into(obj, out)`` and
``decode_from(buf, pos) -> (obj, pos)``; runs of fixed-size fields share a
single precompiled ``struct.Struct``.  Compiling from the schema keeps the
wire layout in one place and the hot path free of per-field dispatch.

This module does no I/O: bytes in, records out, and back.
"""

from __future__ import annotations

import dataclasses
import inspect
import struct
import sys
import typing
from typing import Annotated, Any, ClassVar, Optional

__all__ = [
    "MAX_BUFFER_DEFAULT",
    "Bool",
    "Buffer",
    "DecodeError",
    "Int",
    "Long",
    "Record",
    "UString",
    "Vector",
    "record",
]

# jute.maxbuffer default: 0xfffff (1 MiB less one byte).
MAX_BUFFER_DEFAULT = 0xFFFFF
# BinaryInputArchive accepts lengths up to maxbuffer + zookeeper.jute.maxbuffer.extrasize,
# the latter defaulting to maxbuffer itself.
_LENGTH_LIMIT = 2 * MAX_BUFFER_DEFAULT


class DecodeError(ValueError):
    """The bytes do not hold the record they should: truncated or unreasonable."""


class _Prim:
    """Marker for a jute primitive; ``fmt`` is its struct code when fixed-size."""

    def __init__(self, name: str, fmt: str = "") -> None:
        self.name = name
        self.fmt = fmt

    def __repr__(self) -> str:
        return self.name


_INT, _LONG, _BOOL = _Prim("int", "i"), _Prim("long", "q"), _Prim("boolean", "?")
_BUFFER, _USTRING = _Prim("buffer"), _Prim("ustring")

# The annotation types: a type checker sees the Python type, the codec the marker.
Int = Annotated[int, _INT]
Long = Annotated[int, _LONG]
Bool = Annotated[bool, _BOOL]
Buffer = Annotated[Optional[bytes], _BUFFER]
UString = Annotated[Optional[str], _USTRING]


class _VectorOf:
    def __init__(self, item: Any) -> None:
        self.item = item

    def __repr__(self) -> str:
        return f"vector<{self.item!r}>"


class Vector:
    """``vector<T>``: int count (-1 for null) then the items."""

    def __class_getitem__(cls, item: Any) -> Any:
        return Annotated[Optional[list], _VectorOf(_kind_of(item))]


def _kind_of(hint: Any) -> Any:
    """The codec marker behind an annotation: a _Prim, a _VectorOf or a Record class."""
    if typing.get_origin(hint) is Annotated:
        return typing.get_args(hint)[1]
    return hint


INT = struct.Struct(">i")
LONG = struct.Struct(">q")
_int_unpack_from = INT.unpack_from
_int_pack = INT.pack


class Record:
    """Base of every jute record (for isinstance checks and typing)."""

    __slots__ = ()
    _jute_fields: ClassVar[tuple[tuple[str, Any], ...]]

    def encode_into(self, out: bytearray) -> None:  # replaced per record
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        out = bytearray()
        self.encode_into(out)
        return bytes(out)

    @classmethod
    def decode_from(cls, buf: bytes | memoryview, pos: int = 0) -> tuple[Any, int]:  # replaced
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview) -> Any:
        obj, _ = cls.decode_from(buf, 0)
        return obj


# ---------------------------------------------------------------------------
# Helpers the generated code calls for variable-length values.


def _read_buffer(buf: Any, pos: int) -> tuple[bytes | None, int]:
    end = pos + 4
    if end > len(buf):
        raise DecodeError("truncated buffer length")
    (n,) = _int_unpack_from(buf, pos)
    if n == -1:
        return None, end
    if n < 0 or n > _LENGTH_LIMIT:
        raise DecodeError(f"unreasonable length {n}")
    stop = end + n
    if stop > len(buf):
        raise DecodeError("truncated buffer")
    return bytes(buf[end:stop]), stop


def _read_ustring(buf: Any, pos: int) -> tuple[str | None, int]:
    end = pos + 4
    if end > len(buf):
        raise DecodeError("truncated string length")
    (n,) = _int_unpack_from(buf, pos)
    if n == -1:
        return None, end
    if n < 0 or n > _LENGTH_LIMIT:
        raise DecodeError(f"unreasonable length {n}")
    stop = end + n
    if stop > len(buf):
        raise DecodeError("truncated string")
    # Java's new String(bytes, UTF_8) replaces malformed input; do the same.
    return str(buf[end:stop], "utf-8", "replace"), stop


def _read_count(buf: Any, pos: int) -> tuple[int, int]:
    end = pos + 4
    if end > len(buf):
        raise DecodeError("truncated vector count")
    (n,) = _int_unpack_from(buf, pos)
    if n > len(buf) - end:  # every item takes at least one byte
        raise DecodeError(f"unreasonable vector count {n}")
    return n, end


def _write_buffer(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out += b"\xff\xff\xff\xff"
    else:
        out += _int_pack(len(value))
        out += value


def _write_ustring(out: bytearray, value: str | None) -> None:
    if value is None:
        out += b"\xff\xff\xff\xff"
    else:
        b = value.encode("utf-8")
        out += _int_pack(len(b))
        out += b


# ---------------------------------------------------------------------------
# Code generation.


def _fixed_fmt(kind: Any) -> str | None:
    if isinstance(kind, _Prim) and kind.fmt:
        return kind.fmt
    return None


def _compile(cls: type, fields: list[tuple[str, Any]]) -> None:
    ns: dict[str, Any] = {
        "_cls": cls,
        "_read_buffer": _read_buffer,
        "_read_ustring": _read_ustring,
        "_read_count": _read_count,
        "_write_buffer": _write_buffer,
        "_write_ustring": _write_ustring,
        "_int_pack": _int_pack,
        "DecodeError": DecodeError,
        "_new": object.__new__,
    }
    dec: list[str] = ["def decode_from(buf, pos=0):"]
    enc: list[str] = ["def encode_into(self, out):"]
    names = [name for name, _ in fields]
    counter = 0

    def fresh(prefix: str) -> str:
        nonlocal counter
        counter += 1
        return f"_{prefix}{counter}"

    def emit_vector(item: Any, target: str, src: str, dec_indent: str, enc_indent: str) -> None:
        n = fresh("n")
        i = fresh("i")
        v = fresh("v")
        dec.append(f"{dec_indent}{n}, pos = _read_count(buf, pos)")
        dec.append(f"{dec_indent}if {n} == -1:")
        dec.append(f"{dec_indent}    {target} = None")
        dec.append(f"{dec_indent}else:")
        dec.append(f"{dec_indent}    {target} = []")
        dec.append(f"{dec_indent}    for {i} in range({n}):")
        item_var = fresh("x")
        emit_single(item, item_var, None, dec_indent + "        ", None)
        dec.append(f"{dec_indent}        {target}.append({item_var})")
        enc.append(f"{enc_indent}if {src} is None:")
        enc.append(f"{enc_indent}    out += b'\\xff\\xff\\xff\\xff'")
        enc.append(f"{enc_indent}else:")
        enc.append(f"{enc_indent}    out += _int_pack(len({src}))")
        enc.append(f"{enc_indent}    for {v} in {src}:")
        emit_single(item, None, v, None, enc_indent + "        ")

    def emit_single(
        kind: Any, target: str | None, src: str | None, dec_indent: str | None, enc_indent: str | None
    ) -> None:
        """Emit decode (into target) and/or encode (from src) of one value."""
        fmt = _fixed_fmt(kind)
        if fmt is not None:
            st = struct.Struct(">" + fmt)
            key = fresh("s")
            ns[key] = st
            if dec_indent is not None:
                dec.append(f"{dec_indent}if pos + {st.size} > len(buf): raise DecodeError('truncated')")
                dec.append(f"{dec_indent}({target},) = {key}.unpack_from(buf, pos); pos += {st.size}")
            if enc_indent is not None:
                enc.append(f"{enc_indent}out += {key}.pack({src})")
        elif kind is _BUFFER:
            if dec_indent is not None:
                dec.append(f"{dec_indent}{target}, pos = _read_buffer(buf, pos)")
            if enc_indent is not None:
                enc.append(f"{enc_indent}_write_buffer(out, {src})")
        elif kind is _USTRING:
            if dec_indent is not None:
                dec.append(f"{dec_indent}{target}, pos = _read_ustring(buf, pos)")
            if enc_indent is not None:
                enc.append(f"{enc_indent}_write_ustring(out, {src})")
        elif isinstance(kind, _VectorOf):
            if dec_indent is not None and enc_indent is not None:
                emit_vector(kind.item, target or "", src or "", dec_indent, enc_indent)
            elif dec_indent is not None:
                # decode-only path (nested in a vector decode)
                saved = len(enc)
                emit_vector(kind.item, target or "", "_unused", dec_indent, "")
                del enc[saved:]
            else:
                saved = len(dec)
                emit_vector(kind.item, "_unused", src or "", "", enc_indent or "")
                del dec[saved:]
        elif isinstance(kind, type) and issubclass(kind, Record):
            key = fresh("r")
            ns[key] = kind
            if dec_indent is not None:
                dec.append(f"{dec_indent}{target}, pos = {key}.decode_from(buf, pos)")
            if enc_indent is not None:
                enc.append(f"{enc_indent}{src}.encode_into(out)")
        else:
            raise TypeError(f"{cls.__name__}: unsupported jute type {kind!r}")

    # Group consecutive fixed-size fields into one struct.
    idx = 0
    while idx < len(fields):
        run: list[tuple[str, str]] = []
        while idx < len(fields) and _fixed_fmt(fields[idx][1]) is not None:
            run.append((fields[idx][0], _fixed_fmt(fields[idx][1]) or ""))
            idx += 1
        if run:
            st = struct.Struct(">" + "".join(f for _, f in run))
            key = fresh("s")
            ns[key] = st
            targets = ", ".join(f"f_{n}" for n, _ in run)
            dec.append(f"    if pos + {st.size} > len(buf): raise DecodeError('truncated {cls.__name__}')")
            dec.append(f"    ({targets},) = {key}.unpack_from(buf, pos); pos += {st.size}")
            srcs = ", ".join(f"self.{n}" for n, _ in run)
            enc.append(f"    out += {key}.pack({srcs})")
            continue
        name, kind = fields[idx]
        idx += 1
        emit_single(kind, f"f_{name}", f"self.{name}", "    ", "    ")

    dec.append("    obj = _new(_cls)")
    for n in names:
        dec.append(f"    obj.{n} = f_{n}")
    dec.append("    return obj, pos")
    if not names:
        enc.append("    pass")
    exec("\n".join(dec), ns)
    exec("\n".join(enc), ns)
    cls.decode_from = staticmethod(ns["decode_from"])  # type: ignore[attr-defined]
    cls.encode_into = ns["encode_into"]  # type: ignore[attr-defined]


_T = typing.TypeVar("_T", bound=type)


def record(cls: _T) -> _T:
    """Make ``cls`` (a Record subclass) a slotted dataclass with a compiled jute codec."""
    module_globals = vars(sys.modules[cls.__module__])
    fields: list[tuple[str, Any]] = []
    for name, hint in inspect.get_annotations(cls).items():
        if isinstance(hint, str):
            hint = eval(hint, module_globals)
        if typing.get_origin(hint) is ClassVar:
            continue
        fields.append((name, _kind_of(hint)))
    dc = dataclasses.dataclass(slots=True)(cls)
    dc._jute_fields = tuple(fields)
    _compile(dc, fields)
    return dc  # type: ignore[return-value]
