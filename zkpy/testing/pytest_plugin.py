"""pytest fixtures for ZooKeeper tests on zkpy (registered as the ``zkpy`` pytest11 entry point).

* ``zk_server`` - a started :class:`~zkpy.testing.ZkServer` per test; configure it with
  ``@pytest.mark.zkpy_server(tick_time_ms=100, config={...}, admin_port=0, ...)``.
* ``zk_client`` - a connected ``KazooClient`` on ``zk_server`` (skips the test without kazoo).
* ``zk_server_factory`` - ``zk_server_factory(**options)`` starts more servers; all are closed.
* ``zk_ensemble`` - a started :class:`~zkpy.testing.ZkEnsemble` (``@pytest.mark.zkpy_ensemble(size=3)``).

Every fixture stops its processes at teardown, whether the test passed or failed.  The module
imports nothing heavy: it is loaded into every pytest run where zkpy is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "zkpy_server(**options): ZkServer options for the zk_server fixture")
    config.addinivalue_line("markers", "zkpy_ensemble(size=3, **options): ZkEnsemble options for zk_ensemble")


def _marker_options(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    marker = request.node.get_closest_marker(name)
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def zk_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Start zkpy servers on demand: ``srv = zk_server_factory(tick_time_ms=100)``."""
    from zkpy.testing.server import ZkServer

    started: list[ZkServer] = []

    def make(**options: Any) -> ZkServer:
        options.setdefault("base_dir", tmp_path_factory.mktemp("zkpy-server"))
        server = ZkServer(**options)
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in started:
            server.close()


@pytest.fixture
def zk_server(request: pytest.FixtureRequest, zk_server_factory: Callable[..., Any]) -> Any:
    """A started zkpy server for this test (options from ``@pytest.mark.zkpy_server``)."""
    return zk_server_factory(**_marker_options(request, "zkpy_server"))


@pytest.fixture
def zk_client(zk_server: Any) -> Iterator[Any]:
    """A kazoo client connected to ``zk_server``; stopped and closed after the test."""
    pytest.importorskip("kazoo")
    from zkpy.testing.kazoo import connect_kazoo

    client = connect_kazoo(zk_server)
    try:
        yield client
    finally:
        try:
            client.stop()
        finally:
            client.close()


@pytest.fixture
def zk_ensemble(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A started ensemble (``@pytest.mark.zkpy_ensemble(size=3, tick_time_ms=200, ...)``)."""
    from zkpy.testing.ensemble import ZkEnsemble

    options = _marker_options(request, "zkpy_ensemble")
    options.setdefault("base_dir", tmp_path_factory.mktemp("zkpy-ensemble"))
    ensemble = ZkEnsemble(**options)
    try:
        ensemble.start()
        yield ensemble
    finally:
        ensemble.close()
