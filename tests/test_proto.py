"""The jute codec: round trips, robustness against arbitrary bytes, and bytes as Apache sends them."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkpy.proto import records
from zkpy.proto.constants import OpCode
from zkpy.proto.framing import FrameError, FrameReader, frame
from zkpy.proto.jute import DecodeError, Record
from zkpy.proto.messages import (
    decode_connect_request,
    decode_multi_request,
    decode_multi_response,
    encode_connect_request,
    encode_multi_request,
    encode_multi_response,
)

ALL_RECORDS = [obj for obj in vars(records).values()
               if isinstance(obj, type) and issubclass(obj, Record) and obj is not Record]

ints = st.integers(-(2**31), 2**31 - 1)
longs = st.integers(-(2**63), 2**63 - 1)
ustrings = st.one_of(st.none(), st.text(max_size=20))
buffers = st.one_of(st.none(), st.binary(max_size=40))


def strategy_for(kind: object) -> st.SearchStrategy:
    from zkpy.proto import jute

    if isinstance(kind, jute._Prim):
        return {"int": ints, "long": longs, "boolean": st.booleans(), "buffer": buffers, "ustring": ustrings}[kind.name]
    if isinstance(kind, jute._VectorOf):
        return st.one_of(st.none(), st.lists(strategy_for(kind.item), max_size=4))
    assert isinstance(kind, type) and issubclass(kind, Record)
    return record_strategy(kind)


def record_strategy(cls: type[Record]) -> st.SearchStrategy:
    return st.builds(cls, *[strategy_for(kind) for _, kind in cls._jute_fields])


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_record_round_trips(cls: type[Record], data: st.DataObject) -> None:
    rec = data.draw(record_strategy(cls))
    encoded = rec.to_bytes()
    decoded, end = cls.decode_from(encoded, 0)
    assert end == len(encoded)
    assert decoded == rec


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(blob=st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_decode_error(cls: type[Record], blob: bytes) -> None:
    try:
        cls.decode_from(blob, 0)
    except DecodeError:
        pass


@settings(max_examples=60, deadline=None)
@given(rec=record_strategy(records.CreateRequest), cut=st.integers(0, 200))
def test_truncated_record_raises_decode_error(rec: records.CreateRequest, cut: int) -> None:
    encoded = rec.to_bytes()
    if cut >= len(encoded):
        return
    with pytest.raises(DecodeError):
        records.CreateRequest.decode_from(encoded[:cut], 0)


def test_stat_layout_matches_zookeeper() -> None:
    stat = records.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    assert stat.to_bytes() == struct.pack(">qqqqiiiqiiq", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


def test_null_string_and_buffer_are_minus_one() -> None:
    assert records.GetDataResponse(None, records.Stat(*[0] * 11)).to_bytes()[:4] == b"\xff\xff\xff\xff"
    assert records.SyncRequest(None).to_bytes() == b"\xff\xff\xff\xff"


def test_unreasonable_length_is_refused() -> None:
    with pytest.raises(DecodeError):
        records.SyncRequest.from_bytes(struct.pack(">i", 1 << 30) + b"x")
    with pytest.raises(DecodeError):
        records.GetChildrenResponse.from_bytes(struct.pack(">i", 1 << 30))


def test_connect_request_with_and_without_read_only_flag() -> None:
    req = records.ConnectRequest(0, 5, 30000, 0, b"\0" * 16)
    old = encode_connect_request(req, None)
    new = encode_connect_request(req, True)
    assert len(old) == 44 and len(new) == 45
    assert decode_connect_request(old).read_only is None
    assert decode_connect_request(new).read_only is True


def test_multi_request_round_trip_and_end_marker() -> None:
    ops = [(OpCode.create, records.CreateRequest("/a", b"", [], 0)),
           (OpCode.delete, records.DeleteRequest("/a", -1)),
           (OpCode.check, records.CheckVersionRequest("/b", 3))]
    out = bytearray()
    encode_multi_request(ops, out)
    assert out.endswith(struct.pack(">i?i", -1, True, -1))
    assert decode_multi_request(bytes(out)) == ops


def test_multi_request_mixing_reads_and_writes_is_refused() -> None:
    out = bytearray()
    encode_multi_request([(OpCode.getData, records.GetDataRequest("/a", False)),
                          (OpCode.delete, records.DeleteRequest("/a", -1))], out)
    with pytest.raises(DecodeError, match="Mixing"):
        decode_multi_request(bytes(out))


def test_multi_response_round_trip() -> None:
    stat = records.Stat(*range(11))
    results = [(OpCode.create, 0, records.CreateResponse("/a")), (OpCode.setData, 0, records.SetDataResponse(stat)),
               (OpCode.delete, 0, None), (OpCode.error, -101, records.ErrorResponse(-101))]
    out = bytearray()
    encode_multi_response(results, out)
    assert decode_multi_response(bytes(out)) == results


@settings(max_examples=100, deadline=None)
@given(bodies=st.lists(st.binary(max_size=50), max_size=8), chunk=st.integers(1, 17))
def test_frame_reader_reassembles_any_chunking(bodies: list[bytes], chunk: int) -> None:
    stream = b"".join(frame(b) for b in bodies)
    reader = FrameReader(1000)
    got: list[bytes] = []
    for i in range(0, len(stream), chunk):
        reader.feed(stream[i : i + chunk])
        got.extend(reader.frames())
    assert got == bodies
    assert reader.buffered == 0


@settings(max_examples=200, deadline=None)
@given(bodies=st.lists(st.binary(max_size=50), max_size=10), cuts=st.lists(st.integers(1, 60), max_size=12),
       one_by_one=st.lists(st.booleans(), min_size=12, max_size=12), as_bytearray=st.booleans())
def test_frame_reader_mixes_whole_and_straddling_reads(bodies: list[bytes], cuts: list[int], one_by_one: list[bool],
                                                        as_bytearray: bool) -> None:
    # Reads of any size (a read holding only whole frames is kept as it came, a frame that
    # straddles reads is accumulated), taken frame by frame or all at once: the same frames,
    # always as bytes.
    stream = b"".join(frame(b) for b in bodies)
    reader = FrameReader(1000)
    got: list[bytes] = []
    pos = 0
    for i, cut in enumerate([*cuts, len(stream)]):
        piece = stream[pos : pos + cut]
        pos += len(piece)
        reader.feed(bytearray(piece) if as_bytearray else piece)
        if one_by_one[i % len(one_by_one)]:
            while (f := reader.next_frame()) is not None:
                got.append(f)
        else:
            got.extend(reader.frames())
        assert reader.buffered == pos - sum(4 + len(g) for g in got)
    assert got == bodies
    assert all(type(g) is bytes for g in got)
    assert reader.buffered == 0


@pytest.mark.parametrize("length", [-1, -(2**31), 1001])
def test_frame_reader_refuses_bad_lengths(length: int) -> None:
    reader = FrameReader(1000)
    reader.feed(struct.pack(">i", length) + b"x")
    with pytest.raises(FrameError):
        reader.frames()


def test_records_are_slotted_dataclasses() -> None:
    for cls in ALL_RECORDS:
        assert dataclasses.is_dataclass(cls)
        assert "__slots__" in cls.__dict__


@settings(max_examples=100, deadline=None)
@given(bodies=st.lists(st.binary(max_size=50), max_size=8), chunk=st.integers(1, 17))
def test_next_frame_takes_frames_one_by_one_across_any_chunking(bodies: list[bytes], chunk: int) -> None:
    stream = b"".join(frame(b) for b in bodies)
    reader = FrameReader(1000)
    got: list[bytes] = []
    for i in range(0, len(stream), chunk):
        reader.feed(stream[i : i + chunk])
        while (f := reader.next_frame()) is not None:
            got.append(f)
    assert got == bodies
    assert reader.buffered == 0
