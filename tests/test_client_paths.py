"""Client-side path rules (PathUtils.validatePath), connect strings and the chroot."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkpy.client.hosts import HostProvider, parse_connect_string
from zkpy.proto import paths as P


def _reason(path: str, sequential: bool = False, fast: bool = True) -> str | None:
    saved = P._GOOD
    if not fast:
        P._GOOD = re.compile(r"(?!x)x")  # never matches: always take the character loop
    try:
        P.validate_path(path, sequential)
        return None
    except ValueError as e:
        return str(e)
    finally:
        P._GOOD = saved


@pytest.mark.parametrize(("path", "reason"), [
    ("", "Path length must be > 0"),
    ("a", "Path must start with / character"),
    ("/a/", "Path must not end with / character"),
    ("/a//b", 'Invalid path string "/a//b" caused by empty node name specified @3'),
    ("/a/./b", 'Invalid path string "/a/./b" caused by relative paths not allowed @3'),
    ("/..", 'Invalid path string "/.." caused by relative paths not allowed @2'),
    ("/a\x00", 'Invalid path string "/a\x00" caused by null character not allowed @2'),
    ("/\ud800", 'Invalid path string "/\ud800" caused by invalid character @1'),
    ("/\U0001f600", 'Invalid path string "/\U0001f600" caused by invalid character @1'),
])
def test_bad_paths_get_the_java_message(path: str, reason: str) -> None:
    assert _reason(path) == reason


@pytest.mark.parametrize("path", ["/", "/a", "/a/b.c", "/...", "/a/..b", "/é/ü", "/zookeeper/quota"])
def test_good_paths_pass(path: str) -> None:
    assert _reason(path) is None


def test_sequential_paths_may_end_in_a_slash() -> None:
    assert _reason("/a/", sequential=True) is None


_chars = st.sampled_from(["/", ".", "a", "\x00", "\x01", "\x7f", "\x9f", "\xa0", "\ud7ff", "\ud800",
                          "\uf8ff", "\uf900", "\uffef", "\ufff0", "\U0001f600", " "])


@settings(max_examples=1000, deadline=None)
@given(st.lists(_chars, max_size=10).map("".join), st.booleans(), st.booleans())
def test_fast_check_agrees_with_the_character_loop(body: str, rooted: bool, sequential: bool) -> None:
    path = ("/" if rooted else "") + body
    assert _reason(path, sequential) == _reason(path, sequential, fast=False)


def test_connect_string_with_chroot_and_default_port() -> None:
    cs = parse_connect_string("h1:2181,h2,[::1]:2182/app/x")
    assert cs.hosts == (("h1", 2181), ("h2", 2181), ("::1", 2182))
    assert cs.chroot.prefix == "/app/x"
    assert cs.chroot.to_server("/") == "/app/x" and cs.chroot.to_server("/a") == "/app/x/a"
    assert cs.chroot.to_client("/app/x") == "/" and cs.chroot.to_client("/app/x/a") == "/a"
    assert not parse_connect_string("h:1/").chroot
    with pytest.raises(ValueError):
        parse_connect_string("h:1/bad/")


def test_host_provider_says_when_a_round_failed() -> None:
    hp = HostProvider((("a", 1), ("b", 2)))
    hp.set_order([("a", 1), ("b", 2)])
    assert hp.next() == (("a", 1), False)
    assert hp.next() == (("b", 2), False)
    assert hp.next() == (("a", 1), True)  # back where we started: pause before going on
    hp.on_connected()
    assert hp.next() == (("b", 2), False)
    assert hp.next() == (("a", 1), True)
