"""docs/testing.md's examples run as written: the pytest module under pytest, the script under Python."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytest.importorskip("kazoo")

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
_EXAMPLE = re.compile(r"<!-- example: (?P<name>[\w.]+) -->\s*```python\n(?P<code>.*?)```", re.S)


def examples() -> dict[str, str]:
    return {m["name"]: m["code"] for m in _EXAMPLE.finditer(DOC.read_text())}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _plugin_installed() -> bool:
    return any(ep.name == "zkpy" for ep in metadata.entry_points(group="pytest11"))


def test_the_doc_has_both_examples() -> None:
    assert set(examples()) == {"test_with_zkpy.py", "plain_python.py", "test_ensemble.py"}


def _run_pytest_example(tmp_path: Path, name: str) -> str:
    module = tmp_path / name
    module.write_text(examples()[name])
    # Through the installed entry point when there is one (as a user gets it), else by name.
    plugin = [] if _plugin_installed() else ["-p", "zkpy.testing.pytest_plugin"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull,
                           "--rootdir", str(tmp_path), *plugin, str(module)],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_pytest_example_passes(tmp_path: Path) -> None:
    assert re.search(r"\b4 passed\b", _run_pytest_example(tmp_path, "test_with_zkpy.py"))


def test_the_ensemble_example_passes(tmp_path: Path) -> None:
    assert re.search(r"\b1 passed\b", _run_pytest_example(tmp_path, "test_ensemble.py"))


def test_the_plain_python_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "plain_python.py"
    script.write_text(examples()["plain_python.py"])
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("Zookeeper version: 3.8.0-zkpy-"), proc.stdout


def test_the_plugin_is_declared_as_a_pytest11_entry_point() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["pytest11"] == {"zkpy": "zkpy.testing.pytest_plugin"}
