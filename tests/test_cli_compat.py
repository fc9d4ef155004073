"""Apache ZooKeeper's own clients against zkpy: zkCli.sh (Java client) and cli_mt (C client).

The same command script runs against Apache ZooKeeper 3.8 and zkpy; the outputs
must be the same once times, zxids and session ids are masked.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.servers import CLI_MT, ZKCLI, ServerProcess, apache_available, apache_missing_reason, make_server

pytestmark = pytest.mark.apache

ZKCLI_SCRIPT = """\
create /cli one
create /cli/child data
ls /cli
get -s /cli
set /cli two
get -w /cli
set -v 1 /cli three
set -v 1 /cli again
stat /cli
create -e /cli/eph x
create -s /cli/seq- x
create -s /cli/seq- x
create -c /cli/box
create -t 60000 /cli/ttl x
ls -s /cli
ls -R /cli
getAllChildrenNumber /cli
getEphemerals /cli
addauth digest bob:pw
setAcl /cli/child auth:bob:pw:cdrwa
getAcl /cli/child
setAcl /cli/child world:anyone:r
getAcl /cli/child
set /cli/child nope
whoami
addWatch -m PERSISTENT_RECURSIVE /cli
create /cli/child2 y
removewatches /cli -a
sync /cli
setquota -n 10 /cli
listquota /cli
create /cli/q1 x
create /cli/q2 yyyy
set /cli/q1 longer-data
delete /cli/q2
listquota /cli
delquota /cli
listquota /cli
create /cli x
delete /cli/missing
delete /cli
deleteall /cli
ls /
quit
"""

CLI_MT_SCRIPT = """\
create /cmt
create +e /cmt/e
create +s /cmt/s
ls /cmt
get /cmt
set /cmt data
get /cmt
wexists /cmt
set /cmt again
ls2 /cmt
delete /cmt/e
exists /cmt/e
sync /cmt
addauth digest x:y
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    if not apache_available() or not ZKCLI.exists():
        pytest.skip(apache_missing_reason())
    base = tmp_path_factory.mktemp("clis")
    cfg = {"extendedTypesEnabled": "true"}
    apache = make_server("apache", base / "apache", extra_cfg=cfg, env={"zookeeper.extendedTypesEnabled": "true"})
    zk = make_server("zkpy", base / "zkpy", extra_cfg=cfg)
    apache.start(timeout_s=60)
    try:
        zk.start()
        try:
            yield {"apache": apache, "zkpy": zk}
        finally:
            zk.stop()
    finally:
        apache.stop()


_MASKS = [
    (re.compile(r"0x[0-9a-f]+"), "0xN"),
    (re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\w+ )?\d{4}"), "DATE"),
    (re.compile(r"time = \d+ msec"), "time = N msec"),
    (re.compile(r"(czxid|mzxid|pzxid)=\d+"), r"\1=N"),
]


def normalize(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if not line.strip() or "SLF4J" in line or line.startswith(("Connecting to", "ZOO_", "20")):
            continue
        for pattern, repl in _MASKS:
            line = pattern.sub(repl, line)
        out.append(line.rstrip())
    return out


def run_zkcli(srv: ServerProcess, script: str) -> str:
    res = subprocess.run([str(ZKCLI), "-server", srv.hosts], input=script, capture_output=True, text=True,
                         timeout=120)
    return res.stdout + res.stderr


def split_events(lines: list[str]) -> tuple[list[str], list[str]]:
    """zkCli prints watch events from its event thread, racing the command output: compare the
    events as a multiset and everything else in order."""
    events = sorted(line for line in lines if line.startswith("WatchedEvent"))
    rest = [line for line in lines if not line.startswith(("WatchedEvent", "WATCHER::"))]
    return rest, events


def test_zkcli_script_prints_the_same_against_zkpy_and_apache(servers: dict[str, ServerProcess]) -> None:
    outputs = {kind: normalize(run_zkcli(srv, ZKCLI_SCRIPT)) for kind, srv in servers.items()}
    assert split_events(outputs["zkpy"]) == split_events(outputs["apache"])
    joined = "\n".join(outputs["zkpy"])
    assert "Created /cli" in joined and "NodeDataChanged" in joined and "'digest,'bob:" in joined


def test_zkcli_one_shot_commands_exit_status(servers: dict[str, ServerProcess]) -> None:
    for srv in servers.values():
        ok = subprocess.run([str(ZKCLI), "-server", srv.hosts, "create", "/oneshot", "v"],
                            capture_output=True, text=True, timeout=60)
        assert "Created /oneshot" in ok.stdout + ok.stderr
        got = subprocess.run([str(ZKCLI), "-server", srv.hosts, "get", "/oneshot"],
                             capture_output=True, text=True, timeout=60)
        assert got.stdout.strip().splitlines()[-1] == "v"
        subprocess.run([str(ZKCLI), "-server", srv.hosts, "delete", "/oneshot"], capture_output=True, timeout=60)


def sort_runs_of_children(lines: list[str]) -> list[str]:
    """Child names come in a Java HashSet's order from Apache: compare each listing as a set."""
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, ""]:
        if line.startswith("\t") and "=" not in line:
            run.append(line)
            continue
        out.extend(sorted(run))
        run = []
        if line:
            out.append(line)
    return out


def run_cli_mt(srv: ServerProcess, script: str) -> str:
    # cli_mt reads commands asynchronously: feed them one by one with a pause, then quit.
    lines = "".join(f"{line}\n" for line in script.splitlines())
    cmd = f"(printf '%s' \"$SCRIPT\" | while IFS= read -r l; do echo \"$l\"; sleep 0.3; done; sleep 1; echo quit) " \
          f"| {CLI_MT} {srv.hosts}"
    res = subprocess.run(["bash", "-c", cmd], env={"SCRIPT": lines, "PATH": "/usr/bin:/bin"}, capture_output=True,
                         text=True, timeout=120)
    return res.stdout + res.stderr


@pytest.mark.skipif(not CLI_MT.exists(), reason="cli_mt (zookeeper-bin) is not installed")
def test_c_client_cli_mt_gets_the_same_answers(servers: dict[str, ServerProcess]) -> None:
    outputs = {}
    for kind, srv in servers.items():
        text = run_cli_mt(srv, CLI_MT_SCRIPT)
        # Keep what the server decided: return codes, names, data and watch events.
        kept = [line for line in normalize(text)
                if re.search(r"rc = |Watcher|^\t|Created|Error|Stat:|data", line) and "session id" not in line]
        outputs[kind] = sort_runs_of_children(kept)
    assert outputs["zkpy"] == outputs["apache"]
    joined = "\n".join(outputs["zkpy"])
    assert "rc = 0" in joined and "CHANGED_EVENT" in joined

