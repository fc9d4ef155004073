"""``zkpy shell`` against Apache ZooKeeper 3.8, compared line for line with zkCli.sh.

The same command sequence runs through zkCli.sh and through zkpy shell, each on a fresh
server (same port, wiped data directory), so even zxids agree; times and session ids
are normalized.  Watch events are printed asynchronously by zkCli, so they are compared
as a multiset apart from the other lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ZKCLI, ServerProcess, apache_available, apache_missing_reason, make_server

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.apache
REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 60
CONNECTED_EVENT = "WatchedEvent state:SyncConnected type:None path:null"

# One session's worth of commands, touching every zkCli command with its flags and errors.
SEQUENCE = [
    "ls /", "ls -s /", "ls -R /",
    "create /a", "create /a/b data", "create -e /e", "create -s /a/s", "create -t 5000 /ttl",
    "create -c /cont", "create /a", "create /p/q", "create -e /e/c",
    "getAcl /a", "getAcl -s /a", "stat /a", "stat /nope",
    "set -s /a newdata", "set -v 99 /a x", "get /a", "get -s /a/b", "get /nope",
    "delete /a", "delete /nope", "delete -v 5 /a/b", "deleteall /nope",
    "create /x hello", "get -w /x", "set /x y", "stat -w /x", "ls -w /", "delete /x",
    "create /q 'quoted data with spaces'", "get /q", "set /q \"double q\"", "get /q",
    "whoami", "getEphemerals", "getEphemerals /", "getEphemerals /nope",
    "getAllChildrenNumber /", "getAllChildrenNumber /nope", "sync /", "sync nope", "config",
    "printwatches", "printwatches off", "printwatches", "printwatches on",
    "bogus", "ls", "get", "create", "ls -x /", "ls / watch", "delete /a/b 3",
    "create -e -c /z", "create -t abc /z", "create -t 5000 -e /z", "create -t 0 /z", "create /bad/", "get bad",
    "set -v", "addauth", "ls -sw /a",
    "addWatch /a", "addWatch -m PERSISTENT /a/b", "addWatch -m foo /a/b", "create /a/new", "set /a/b v2",
    "removewatches /a", "removewatches /nope", "removewatches /a/b -d", "removewatches /a/b",
    "setquota -n 5 /a", "listquota /a", "setquota -b 100 /a", "listquota /a", "setquota -n 2 /a/b",
    "create /a/c1", "listquota /a", "setquota -n 1 /a", "setquota -n 3 -b 4 /a", "setquota -n 0 /a",
    "setquota /a", "setquota -n 3 /nope", "setquota -n 3 /zookeeper/quota", "ls -R /zookeeper/quota",
    "delquota -n /a", "listquota /a", "delquota /a", "listquota /a", "delquota /a", "ls -R /zookeeper",
    "setAcl /a world:anyone:r", "getAcl /a", "setAcl /a world:anyone", "setAcl -s /a world:anyone:cdrwa",
    "create /d1", "create /d1/d2", "create /d1/d2/d3", "ls -R /d1", "deleteall -b 1 /d1", "ls /d1",
    "create /r", "create /r/s", "setAcl -R /r world:anyone:cdrw", "getAcl /r/s",
    "setAcl /a/b digest:u:x:cdrwa", "getAcl /a/b", "get /a/b", "setAcl /a/b world:anyone:zz",
    "addauth digest u:p", "whoami",
    "history", "redo 0", "redo 999", "redo 107", "redo",
    "listquota /a",
    "close", "ls /", "history", "connect", "ls /",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if not apache_available():
        pytest.skip(apache_missing_reason())
    srv = make_server("apache", tmp_path_factory.mktemp("shell") / "apache",
                      extra_cfg={"extendedTypesEnabled": "true"},
                      env={"zookeeper.extendedTypesEnabled": "true"})
    srv.start(timeout_s=60)
    yield srv
    srv.stop()


def fresh(srv: ServerProcess) -> ServerProcess:
    """The same server (port) with an empty data directory."""
    import shutil

    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)
    srv.start(timeout_s=60)
    return srv


def shell_env(home: Path, term: str = "dumb") -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HOME": str(home), "TERM": term, "PYTHONPATH": str(REPO), "TZ": "UTC",
                "PROMPT_TOOLKIT_NO_CPR": "1"})
    return env


def zkpy_shell(*args: str) -> list[str]:
    return [sys.executable, "-m", "zkpy.cli.shell", *args]


def zkcli(*args: str) -> list[str]:
    return ["bash", str(ZKCLI), *args]


def normalize(text: str) -> tuple[list[str], Counter[str]]:
    """(ordinary lines, watch events) with times, session ids and banners normalized away."""
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    out: list[str] = []
    events: Counter[str] = Counter()
    # A shell prints an event ("WATCHER::", then the WatchedEvent line) from the thread that
    # delivers it, so a command's answer can land between the two lines: each "WATCHER::" is
    # paired with the next WatchedEvent line wherever it comes.
    announced = 0
    for ln in lines:
        if ln == "WATCHER::":
            announced += 1
            continue
        if announced and ln.startswith("WatchedEvent "):
            announced -= 1
            events[ln] += 1
            continue
        if ln.startswith("SLF4J:") or ln.startswith("JLine support") or ln == "":
            continue
        ln = re.sub(r"^(ctime|mtime) = .*", r"\1 = <date>", ln)
        ln = re.sub(r"^ephemeralOwner = 0x[0-9a-f]{2,}", "ephemeralOwner = <session>", ln)
        out.append(ln)
    return out, events


def run_piped(cmd: list[str], commands: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, input="\n".join(commands) + "\n", stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, timeout=TIMEOUT_S * 3, cwd=REPO)
    return proc.stdout


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PROMPT = re.compile(r"\[zk: [^\]]*\(\w+\) \d+\] ?")


def run_pty(srv: ServerProcess, commands: list[str], home: Path) -> str:
    """Drive the interactive shell through a pseudo-terminal, waiting for each next prompt.

    Returns what a person would read, less the prompts and the echo of what was typed.
    """
    child = pexpect.spawn(sys.executable, ["-m", "zkpy.cli.shell", "-server", srv.hosts],
                          env=shell_env(home), encoding="utf-8", timeout=TIMEOUT_S, cwd=str(REPO),
                          dimensions=(50, 400))
    transcript = []
    try:
        child.expect_exact(CONNECTED_EVENT)  # a dumb terminal's prompt is drawn once, as zkCli's
        transcript.append(child.before + child.after)
        for n, line in enumerate(commands, start=1):
            child.sendline(line)
            child.expect(re.compile(rf"\[zk: [^\]]*\(\w+\) {n}\] "))
            transcript.append(child.before + child.after)
        # "quit", not ^D: a dumb prompt is printed before the terminal goes raw, and a ^D
        # typed in that moment is eaten by the line discipline.
        child.sendline("quit")
        child.expect(pexpect.EOF)
        transcript.append(child.before)
    finally:
        child.close(force=True)
    typed = {c.strip() for c in [*commands, "quit"]}
    lines = []
    for ln in _ANSI.sub("", "".join(transcript)).replace("\r\n", "\n").split("\n"):
        ln = _PROMPT.sub("", ln.split("\r")[-1] if ln.rstrip("\r") else ln)
        if ln in typed:
            continue
        lines.append(ln)
    return "\n".join(lines)


def assert_same(ours: str, theirs: str) -> None:
    our_lines, our_events = normalize(ours)
    their_lines, their_events = normalize(theirs)
    assert our_lines == their_lines
    assert our_events == their_events


@pytest.mark.skipif(not ZKCLI.exists(), reason="zkCli.sh is not installed")
def test_piped_session_matches_zkcli(server: ServerProcess, tmp_path: Path) -> None:
    theirs = run_piped(zkcli("-server", fresh(server).hosts), SEQUENCE, shell_env(tmp_path))
    ours = run_piped(zkpy_shell("-server", fresh(server).hosts), SEQUENCE, shell_env(tmp_path))
    assert "Node already exists: /a" in ours
    assert "Traceback" not in ours
    assert_same(ours, theirs)


@pytest.mark.skipif(not ZKCLI.exists(), reason="zkCli.sh is not installed")
def test_interactive_session_matches_zkcli(server: ServerProcess, tmp_path: Path) -> None:
    commands = [c for c in SEQUENCE if c not in ("close", "connect")]  # the prompt shows those
    theirs = run_piped(zkcli("-server", fresh(server).hosts), commands, shell_env(tmp_path))
    ours = run_pty(fresh(server), commands, tmp_path)
    assert "Traceback" not in ours
    our_lines, our_events = normalize(ours)
    their_lines, their_events = normalize(theirs)
    assert our_lines == their_lines
    our_events["WatchedEvent state:Closed type:None path:null"] -= 1  # from our "quit"
    assert +our_events == their_events


def test_prompt_counts_commands_and_shows_state(server: ServerProcess, tmp_path: Path) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "zkpy.cli.shell", "-server", server.hosts],
                          env=shell_env(tmp_path), encoding="utf-8", timeout=TIMEOUT_S, cwd=str(REPO))
    try:
        child.expect_exact(f"[zk: {server.hosts}(")
        child.expect_exact(CONNECTED_EVENT)
        child.sendline("ls /zookeeper")
        child.expect_exact("[config, quota]")
        child.expect_exact(f"[zk: {server.hosts}(CONNECTED) 1] ")
        child.sendline("close")
        child.expect_exact(f"[zk: {server.hosts}(CLOSED) 2] ")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_history_is_kept_across_runs(server: ServerProcess, tmp_path: Path) -> None:
    env = shell_env(tmp_path, term="xterm")
    for attempt in range(2):
        child = pexpect.spawn(sys.executable, ["-m", "zkpy.cli.shell", "-server", server.hosts],
                              env=env, encoding="utf-8", timeout=TIMEOUT_S, cwd=str(REPO))
        try:
            child.expect_exact("(CONNECTED) 0]")
            if attempt == 0:
                child.sendline("create /hist-node")
                child.expect_exact("Created /hist-node")
            else:
                child.send("\x1b[A")  # up arrow: the last line of the previous run
                child.send("\r")
                child.expect_exact("Node already exists: /hist-node")
            child.expect_exact("(CONNECTED) 1]")
            child.sendeof()
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
    assert "create /hist-node" in (tmp_path / ".zkpy_history").read_text()


def test_tab_completes_commands_and_znode_paths(server: ServerProcess, tmp_path: Path) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "zkpy.cli.shell", "-server", server.hosts],
                          env=shell_env(tmp_path, term="xterm"), encoding="utf-8", timeout=TIMEOUT_S,
                          cwd=str(REPO))
    try:
        child.expect_exact("(CONNECTED) 0]")
        child.send("getAllCh\t")  # unique command prefix
        child.expect_exact("ildrenNumber")  # completion is asynchronous: wait for it
        child.send(" /zooke\t")  # unique child of /
        child.expect_exact("eper")
        child.send("\r")
        child.expect_exact("(CONNECTED) 1]")
        seen = _ANSI.sub("", child.before)
        assert "getAllChildrenNumber /zookeeper" in seen
        assert re.search(r"^2\r?$", seen, re.M)  # /zookeeper has config and quota
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


# ------------------------------------------------------------------ one command from the command line


def one_shot(srv: ServerProcess, tmp_path: Path, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(zkpy_shell("-server", srv.hosts, *words), capture_output=True, text=True,
                          env=shell_env(tmp_path), timeout=TIMEOUT_S, cwd=REPO)


def test_one_shot_command_succeeds_with_status_zero(server: ServerProcess, tmp_path: Path) -> None:
    r = one_shot(server, tmp_path, "create", "/oneshot", "some data")
    assert r.returncode == 0 and "Created /oneshot" in r.stderr
    r = one_shot(server, tmp_path, "get", "/oneshot")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "some data"
    assert r.stdout.startswith(f"Connecting to {server.hosts}\n")


def test_one_shot_errors_exit_nonzero_without_traceback(server: ServerProcess, tmp_path: Path) -> None:
    r = one_shot(server, tmp_path, "get", "/does-not-exist")
    assert r.returncode == 1 and r.stderr.strip() == "Node does not exist: /does-not-exist"
    r = one_shot(server, tmp_path, "nosuchcommand")
    assert r.returncode == 127 and r.stderr.splitlines()[-1] == "Command not found: Command not found nosuchcommand"
    r = one_shot(server, tmp_path, "set", "-v", "abc", "/x", "y")
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_unreachable_server_fails_after_the_timeout(tmp_path: Path) -> None:
    from tests.support.servers import free_port

    r = subprocess.run(zkpy_shell("-server", f"127.0.0.1:{free_port()}", "-timeout", "1000", "ls", "/"),
                       capture_output=True, text=True, env=shell_env(tmp_path), timeout=TIMEOUT_S, cwd=REPO)
    assert r.returncode == 1 and "ConnectionLoss" in r.stderr and "Traceback" not in r.stderr


def test_one_shot_matches_zkcli_outputs(server: ServerProcess, tmp_path: Path) -> None:
    if not ZKCLI.exists():
        pytest.skip("zkCli.sh is not installed")
    for words in (["ls", "/zookeeper"], ["stat", "/nope"], ["getAcl", "/"], ["ls", "-R", "/zookeeper"]):
        theirs = subprocess.run(zkcli("-server", server.hosts, *words), capture_output=True, text=True,
                                env=shell_env(tmp_path), timeout=TIMEOUT_S)
        ours = one_shot(server, tmp_path, *words)
        assert ours.returncode == theirs.returncode
        assert normalize(ours.stdout) == normalize(theirs.stdout)
        assert normalize(ours.stderr)[0] == normalize(theirs.stderr)[0]


def test_split_line_follows_zkcli_quoting() -> None:
    from zkpy.cli.shell import split_line

    assert split_line("create /a 'x y' \"z w\"") == ["create", "/a", "x y", "z w"]
    assert split_line("  ls   /  ") == ["ls", "/"]
    assert split_line("set /a it's") == ["set", "/a", "it's"]


def test_option_parser_follows_commons_cli() -> None:
    from zkpy.cli.shell_commands import CliError, parse_options

    p = parse_options({"s": False, "v": True, "w": False}, ["set", "-v5", "/a", "-sw", "x"])
    assert p.opts == {"v": "5", "s": True, "w": True} and p.args == ["set", "/a", "x"]
    p = parse_options({"v": True}, ["delete", "-v", "-1", "/a"])
    assert p.opts == {"v": "-1"} and p.args == ["delete", "/a"]
    with pytest.raises(CliError, match="Unrecognized option: -x"):
        parse_options({"s": False}, ["ls", "-x", "/"])
    with pytest.raises(CliError, match="Missing argument for option: v"):
        parse_options({"v": True}, ["set", "/a", "-v"])


def test_java_date_format() -> None:
    from zkpy.cli.shell_format import hex_long, java_date

    os.environ["TZ"] = "UTC"
    import time

    time.tzset()
    assert java_date(0) == "Thu Jan 01 00:00:00 UTC 1970"
    assert java_date(1795312305635) == "Sun Nov 22 01:51:45 UTC 2026"
    assert hex_long(-1) == "ffffffffffffffff"
