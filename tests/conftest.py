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
