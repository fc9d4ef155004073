from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ServerProcess, apache_available, apache_missing_reason, make_server


def pytest_collection_modifyitems(config, items):
    if apache_available():
        return
    skip = pytest.mark.skip(reason=apache_missing_reason())
    for item in items:
        if "apache" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def zkpy_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A standalone zkpy server process (``python -m zkpy server zoo.cfg``), 4lw all enabled."""
    srv = make_server("zkpy", tmp_path / "zkpy", extra_cfg={"extendedTypesEnabled": "true"})
    srv.start(timeout_s=60)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def shared_zkpy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One zkpy server for a whole test module (tests must use distinct paths)."""
    srv = make_server("zkpy", tmp_path_factory.mktemp("zkpy"), extra_cfg={"extendedTypesEnabled": "true"})
    srv.start(timeout_s=60)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def apache_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A standalone Apache ZooKeeper 3.8 server (Debian's), 4lw all enabled."""
    if not apache_available():
        pytest.skip(apache_missing_reason())
    srv = make_server("apache", tmp_path / "apache", extra_cfg={"extendedTypesEnabled": "true"},
                      env={"zookeeper.extendedTypesEnabled": "true"})
    srv.start(timeout_s=60)
    try:
        yield srv
    finally:
        srv.stop()
