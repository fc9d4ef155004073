"""zkCli's commands (cli/*Command.java): their options, their output and their errors.

Each command is an async function taking the shell and its parsed command line; it
writes to ``sh.out`` / ``sh.err`` exactly what zkCli writes to System.out / System.err,
and raises :class:`CliError` with zkCli's message for a failure.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zkpy.cli import shell_format as fmt
from zkpy.client import ops
from zkpy.client.paths import validate_path
from zkpy.proto import errors as E
from zkpy.proto.constants import TTL_MAX, AddWatchMode, CreateMode, WatcherType

if TYPE_CHECKING:
    from zkpy.cli.shell import Shell

__all__ = ["COMMANDS", "CliError", "Command", "Parsed", "parse_options", "usage_lines"]


class CliError(Exception):
    """A failed command: zkCli prints the message on stderr and exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def keeper_message(e: E.ZooKeeperError) -> str:
    """CliWrapperException's message for a KeeperException."""
    path = "null" if e.path is None else e.path
    special = {
        E.NoNodeError: "Node does not exist: ",
        E.NoChildrenForEphemeralsError: "Ephemerals cannot have children: ",
        E.NodeExistsError: "Node already exists: ",
        E.NotEmptyError: "Node not empty: ",
        E.NotReadOnlyError: "Not a read-only call: ",
        E.InvalidACLError: "Acl is not valid : ",
        E.NoAuthError: "Insufficient permission : ",
        E.BadArgumentsError: "Arguments are not valid : ",
        E.BadVersionError: "version No is not valid : ",
        E.QuotaExceededError: "Quota has exceeded : ",
    }
    for cls, prefix in special.items():
        if isinstance(e, cls):
            return prefix + path
    if isinstance(e, E.ReconfigInProgressError):
        return "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
    if isinstance(e, E.NewConfigNoQuorumError):
        return ("No quorum of new config is connected and up-to-date with the leader of last commmitted "
                "config - try invoking reconfiguration after new servers are connected and synced")
    text = f"KeeperErrorCode = {e.message}"
    return f"{text} for {e.path}" if e.path else text


def wrap(e: Exception) -> CliError:
    if isinstance(e, E.ZooKeeperError):
        return CliError(keeper_message(e))
    return CliError(str(e))


# ------------------------------------------------------------------ commons-cli's DefaultParser


@dataclass
class Parsed:
    """A parsed command line: options given (value or True) and the other words, command first."""

    opts: dict[str, str | bool] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return name in self.opts

    def value(self, name: str) -> str:
        v = self.opts[name]
        return v if isinstance(v, str) else ""


_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def parse_options(spec: dict[str, bool], words: list[str]) -> Parsed:
    """Options anywhere among the words, "-v 3" or "-v3", "-sw" for "-s -w", "--" ends them.

    ``spec`` maps an option letter to whether it takes a value.  Errors read like
    commons-cli's exceptions, which zkCli prints whole.
    """
    parsed = Parsed()
    waiting: str | None = None  # an option still owed its value
    only_args = False
    for tok in words:
        if waiting is not None and (not tok.startswith("-") or tok == "-" or _NUMBER.match(tok)):
            parsed.opts[waiting] = tok
            waiting = None
            continue
        if only_args or tok == "-" or not tok.startswith("-"):
            _missing(waiting)
            parsed.args.append(tok)
            continue
        if tok == "--":
            _missing(waiting)
            only_args = True
            continue
        _missing(waiting)
        name = tok.lstrip("-")
        if name in spec:
            if spec[name]:
                waiting = name
            else:
                parsed.opts[name] = True
            continue
        if tok.startswith("--") or not name or name[0] not in spec:
            raise CliError(f"org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {tok}")
        for i, ch in enumerate(name):  # concatenated short options
            if ch not in spec:
                raise CliError(f"org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {tok}")
            if spec[ch]:
                rest = name[i + 1 :]
                if rest:
                    parsed.opts[ch] = rest
                else:
                    waiting = ch
                break
            parsed.opts[ch] = True
    _missing(waiting)
    return parsed


def _missing(waiting: str | None) -> None:
    if waiting is not None:
        raise CliError(f"org.apache.commons.cli.MissingArgumentException: Missing argument for option: {waiting}")


def _int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise CliError(f'java.lang.NumberFormatException: For input string: "{text}"') from None
    if not -(1 << 31) <= v < (1 << 31):
        raise CliError(f'java.lang.NumberFormatException: For input string: "{text}"')
    return v


# ------------------------------------------------------------------ the commands

Handler = Callable[["Shell", Parsed], Awaitable[None]]


@dataclass(frozen=True)
class Command:
    name: str
    option_str: str
    spec: dict[str, bool]
    run: Handler
    # Commands zkCli handles itself, before insisting on a live session.
    builtin: bool = False

    @property
    def usage(self) -> str:
        return f"{self.name} {self.option_str}"


COMMANDS: dict[str, Command] = {}


def command(name: str, option_str: str, spec: dict[str, bool] | None = None,
            builtin: bool = False) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = Command(name, option_str, spec or {}, fn, builtin)
        return fn
    return register


def usage_lines() -> list[str]:
    lines = ["ZooKeeper -server host:port -client-configuration properties-file cmd args"]
    for name in sorted(COMMANDS):
        lines.append(f"\t{COMMANDS[name].usage}")
    return lines


def _deprecated_watch_arg(sh: Shell, cl: Parsed, words: list[str], what: str, spec: dict[str, bool]) -> Parsed:
    """'ls path watch' (any third word) still means -w, with a warning (retainCompatibility)."""
    if len(cl.args) > 2:
        sh.err.write(f"'{what} path [watch]' has been deprecated. Please use '{what} [-w] path' instead.\n"
                     if what != "get" else
                     "'get path [watch]' has been deprecated. Please use 'get [-s] [-w] path' instead.\n")
        words = list(words)
        words[2] = "-w"
        return parse_options(spec, words)
    return cl


_LS_SPEC = {"?": False, "s": False, "w": False, "R": False}


@command("ls", "[-s] [-w] [-R] path", _LS_SPEC)
async def ls(sh: Shell, cl: Parsed) -> None:
    if cl.has("?"):
        sh.out.write("usage: ls [options] path\n -?   help\n -R   recurse\n -s   stat\n -w   watch\n")
    cl = _deprecated_watch_arg(sh, cl, sh.words, "ls", _LS_SPEC)
    if len(cl.args) < 2:
        raise CliError(COMMANDS["ls"].usage)
    path = cl.args[1]
    watch = cl.has("w")
    zk = sh.zk
    try:
        if cl.has("R"):
            await visit_dfs(sh, path, watch, lambda p: sh.out.write(p + "\n"))
        elif cl.has("s"):
            children, stat = await zk.get_children2(path, watch=watch)
            sh.out.write(fmt.java_list(sorted(children)) + "\n")
            fmt.print_stat(stat, sh.out)
        else:
            children = await zk.get_children(path, watch=watch)
            sh.out.write(fmt.java_list(sorted(children)) + "\n")
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None


async def visit_dfs(sh: Shell, path: str, watch: bool, visit: Callable[[str], object]) -> None:
    """ZKUtil.visitSubTreeDFS: the node, then each level's children before descending."""
    validate_path(path)
    await sh.zk.get_data(path, watch=watch)
    visit(path)

    async def helper(p: str) -> None:
        try:
            children = sorted(await sh.zk.get_children(p, watch=watch))
        except E.NoNodeError:
            return
        prefix = p if p == "/" else p + "/"
        for c in children:
            visit(prefix + c)
        for c in children:
            await helper(prefix + c)

    await helper(path)


_GET_SPEC = {"s": False, "w": False}


@command("get", "[-s] [-w] path", _GET_SPEC)
async def get(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["get"].usage)
    cl = _deprecated_watch_arg(sh, cl, sh.words, "get", _GET_SPEC)
    try:
        data, stat = await sh.zk.get_data(cl.args[1], watch=cl.has("w"))
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None
    sh.out.write(fmt.java_bytes_str(data) + "\n")
    if cl.has("s"):
        fmt.print_stat(stat, sh.out)


@command("set", "[-s] [-v version] path data", {"s": False, "v": True})
async def set_(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 3:
        raise CliError(COMMANDS["set"].usage)
    version = _int(cl.value("v")) if cl.has("v") else -1
    try:
        stat = await sh.zk.set_data(cl.args[1], cl.args[2].encode(), version)
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None
    if cl.has("s"):
        fmt.print_stat(stat, sh.out)


@command("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]", {"e": False, "s": False, "c": False, "t": True})
async def create(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["create"].usage)
    has_e, has_s, has_c, has_t = (cl.has(x) for x in "esct")
    if has_c and (has_e or has_s):
        raise CliError("-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.")
    ttl = None
    if has_t:
        try:
            ttl = int(cl.value("t"))
        except ValueError:
            raise CliError("-t argument must be a long value") from None
    if has_t and has_e:
        raise CliError("TTLs cannot be used with Ephemeral znodes")
    if has_t and has_c:
        raise CliError("TTLs cannot be used with Container znodes")
    if has_e and has_s:
        mode = CreateMode.EPHEMERAL_SEQUENTIAL
    elif has_e:
        mode = CreateMode.EPHEMERAL
    elif has_s:
        mode = CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL if has_t else CreateMode.PERSISTENT_SEQUENTIAL
    elif has_c:
        mode = CreateMode.CONTAINER
    else:
        mode = CreateMode.PERSISTENT_WITH_TTL if has_t else CreateMode.PERSISTENT
    if ttl is not None and (ttl <= 0 or ttl > TTL_MAX):
        raise CliError(f"ttl must be positive and cannot be larger than: {TTL_MAX}")
    path = cl.args[1]
    data = cl.args[2].encode() if len(cl.args) > 2 else None
    acl = fmt.parse_acl(cl.args[3], sh.err) if len(cl.args) > 3 else None
    try:
        created = await sh.zk.create(path, data, acl, mode, ttl)
    except E.EphemeralOnLocalSessionError as e:
        sh.err.write("Unable to create ephemeral node on a local session\n")
        raise wrap(e) from None
    except E.InvalidACLError as e:
        sh.err.write(f"{e}\n")
        raise wrap(e) from None
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None
    sh.err.write(f"Created {created}\n")


_DELETE_SPEC = {"v": True}


@command("delete", "[-v version] path", _DELETE_SPEC)
async def delete(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["delete"].usage)
    if len(cl.args) > 2:
        sh.err.write("'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead.\n")
    version = _int(cl.value("v")) if cl.has("v") else -1
    try:
        await sh.zk.delete(cl.args[1], version)
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None


@command("deleteall", "path [-b batch size]", {"b": True})
async def deleteall(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["deleteall"].usage)
    try:
        batch = int(cl.value("b")) if cl.has("b") else 1000
    except ValueError:
        raise CliError("-b argument must be an int value") from None
    try:
        if not await delete_recursive(sh, cl.args[1], batch):
            sh.err.write("Failed to delete some node(s) in the subtree!\n")
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None


async def delete_recursive(sh: Shell, root: str, batch: int) -> bool:
    """ZKUtil.deleteRecursive: list the tree breadth-first, delete leaves-first in multi batches."""
    validate_path(root)
    tree = [root]
    i = 0
    while i < len(tree):
        node = tree[i]
        i += 1
        for child in await sh.zk.get_children(node):
            tree.append(("" if node == "/" else node) + "/" + child)
    batch = max(batch, 1)
    ok = True
    in_flight: set[asyncio.Task[object]] = set()
    group: list[ops.Op] = []
    for path in reversed(tree):
        group.append(ops.Delete(path, -1))
        if len(group) == batch or path is tree[0]:
            if not ok:
                break
            if len(in_flight) >= 10:  # ZKUtil's rate limit of ten outstanding batches
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                ok = ok and all(t.exception() is None for t in done)
            in_flight.add(asyncio.ensure_future(sh.zk.multi(group)))
            group = []
    if in_flight:
        done, _ = await asyncio.wait(in_flight)
        ok = ok and all(t.exception() is None for t in done)
    return ok


@command("stat", "[-w] path", {"w": False})
async def stat(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["stat"].usage)
    cl = _deprecated_watch_arg(sh, cl, sh.words, "stat", {"w": False})
    path = cl.args[1]
    try:
        st = await sh.zk.exists(path, watch=cl.has("w"))
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None
    if st is None:
        raise wrap(E.NoNodeError(path))
    fmt.print_stat(st, sh.out)


@command("getAcl", "[-s] path", {"s": False})
async def get_acl(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["getAcl"].usage)
    try:
        acl, st = await sh.zk.get_acl(cl.args[1])
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None
    for a in acl:
        sh.out.write(fmt.acl_line(a) + "\n")
    if cl.has("s"):
        fmt.print_stat(st, sh.out)


@command("setAcl", "[-s] [-v version] [-R] path acl", {"s": False, "v": True, "R": False})
async def set_acl(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 3:
        raise CliError(COMMANDS["setAcl"].usage)
    path = cl.args[1]
    acl = fmt.parse_acl(cl.args[2], sh.err)
    version = _int(cl.value("v")) if cl.has("v") else -1
    try:
        if cl.has("R"):
            paths: list[str] = []
            await visit_dfs(sh, path, False, paths.append)
            for p in paths:
                try:
                    await sh.zk.set_acl(p, acl, version)
                except E.ZooKeeperError as e:
                    sh.out.write(str(e))  # zkCli prints these without a newline
        else:
            st = await sh.zk.set_acl(path, acl, version)
            if cl.has("s"):
                fmt.print_stat(st, sh.out)
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None


@command("sync", "path")
async def sync(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["sync"].usage)
    try:
        await asyncio.wait_for(sh.zk.sync(cl.args[1]), 30)
    except ValueError as e:
        raise wrap(e) from None
    except TimeoutError:
        raise CliError("java.util.concurrent.TimeoutException") from None
    except E.ZooKeeperError as e:
        sh.out.write(f"Sync has failed. rc={e.code}\n")
        return
    sh.out.write("Sync is OK\n")


@command("addauth", "scheme auth")
async def addauth(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["addauth"].usage)
    auth = cl.args[2].encode() if len(cl.args) >= 3 else None
    # Java's addAuthInfo does not wait for the answer; a refusal shows up as an
    # AuthFailed event and a dead session, so do not report it here either.
    try:
        await sh.zk.add_auth(cl.args[1], auth)
    except E.ZooKeeperError:
        pass


@command("addWatch", "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - "
         "default is PERSISTENT_RECURSIVE", {"m": True})
async def add_watch(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) != 2:
        raise CliError(COMMANDS["addWatch"].usage)
    mode = AddWatchMode.PERSISTENT_RECURSIVE
    if cl.has("m"):
        try:
            mode = AddWatchMode[cl.value("m").upper()]
        except KeyError:
            raise CliError(COMMANDS["addWatch"].usage) from None
    try:
        await sh.zk.add_watch(cl.args[1], mode, True)
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None


@command("removewatches", "path [-c|-d|-a] [-l]", {"c": False, "d": False, "a": False, "l": False})
async def remove_watches(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["removewatches"].usage)
    wtype = WatcherType.Any
    if cl.has("c"):
        wtype = WatcherType.Children
    elif cl.has("d"):
        wtype = WatcherType.Data
    try:
        await sh.zk.remove_watches(cl.args[1], wtype, cl.has("l"))
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None


@command("getEphemerals", "path")
async def get_ephemerals(sh: Shell, cl: Parsed) -> None:
    try:
        paths = await sh.zk.get_ephemerals(cl.args[1] if len(cl.args) >= 2 else "/")
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None
    sh.out.write(fmt.java_list(paths) + "\n")


@command("getAllChildrenNumber", "path")
async def get_all_children_number(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["getAllChildrenNumber"].usage)
    try:
        n = await sh.zk.get_all_children_number(cl.args[1])
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None
    sh.out.write(f"{n}\n")


@command("whoami", "")
async def whoami(sh: Shell, cl: Parsed) -> None:
    try:
        infos = await sh.zk.whoami()
    except E.ZooKeeperError as e:
        raise wrap(e) from None
    sh.out.write("Auth scheme: User\n")
    for ci in infos:
        sh.out.write(f"{ci.authScheme}: {ci.user}\n")


@command("config", "[-c] [-w] [-s]", {"s": False, "w": False, "c": False})
async def config(sh: Shell, cl: Parsed) -> None:
    try:
        data, st = await sh.zk.get_config(watch=cl.has("w"))
    except E.ZooKeeperError as e:
        raise wrap(e) from None
    text = fmt.java_bytes_str(data)
    sh.out.write((fmt.client_config_str(text) if cl.has("c") else text) + "\n")
    if cl.has("s"):
        fmt.print_stat(st, sh.out)


@command("close", "")
async def close(sh: Shell, cl: Parsed) -> None:
    await sh.zk.close()


@command("version", "")
async def version(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) > 1:
        raise CliError(COMMANDS["version"].usage)
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        v = dist_version("zkpy")
    except PackageNotFoundError:
        v = "unknown"
    sh.out.write(f"ZooKeeper CLI version: zkpy {v} (ZooKeeper 3.8 compatible)\n")


@command("listquota", "path")
async def listquota(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["listquota"].usage)
    path = cl.args[1]
    limits = f"/zookeeper/quota{path}/zookeeper_limits"
    sh.err.write(f"absolute path is {limits}\n")
    try:
        validate_path(path)
        lim, _ = await sh.zk.get_data(limits)
        st, _ = await sh.zk.get_data(f"/zookeeper/quota{path}/zookeeper_stats")
    except ValueError as e:
        raise wrap(e) from None
    except E.NoNodeError:
        sh.err.write(f"quota for {path} does not exist.\n")
        return
    except E.ZooKeeperError as e:
        raise wrap(e) from None
    sh.out.write(f"Output quota for {path} {StatsTrack(lim)}\n")
    sh.out.write(f"Output stat for {path} {StatsTrack(st)}\n")


# ------------------------------------------------------------------ quotas (Quotas.java, StatsTrack.java)

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"
_QUOTA_KEYS = {"n": "count", "b": "bytes", "N": "countHardLimit", "B": "byteHardLimit"}


class StatsTrack:
    """A quota or usage record, "count=4,bytes=5=;byteHardLimit=10;countHardLimit=10"."""

    def __init__(self, data: bytes | None = None) -> None:
        self.stats: dict[str, int] = {}
        for pair in re.split(r"[,;]+", (data or b"").decode()):
            if pair:
                kv = pair.split("=")
                self.stats[kv[0]] = int(kv[1]) if len(kv) > 1 and kv[1] else -1

    def get(self, key: str) -> int:
        return self.stats.get(key, -1)

    def __str__(self) -> str:
        rest = {k: v for k, v in self.stats.items() if k not in ("count", "bytes")}
        text = f"count={self.get('count')},bytes={self.get('bytes')}"
        if rest:
            text += "=" + "".join(f";{k}={rest[k]}" for k in sorted(rest))
        return text

    def to_bytes(self) -> bytes:
        return str(self).encode()


def _one_quota_option(cl: Parsed) -> list[str]:
    given = [o for o in "nbNB" if cl.has(o)]
    if len(given) > 1:  # an OptionGroup in zkCli: one of them at a time
        raise CliError(f"org.apache.commons.cli.AlreadySelectedException: The option '{given[1]}' was specified "
                       f"but an option from this group has already been selected: '{given[0]}'")
    return given


@command("setquota", "-n|-b|-N|-B val path", {"n": True, "b": True, "N": True, "B": True})
async def setquota(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["setquota"].usage)
    path = cl.args[1]
    given = _one_quota_option(cl)
    if not given:  # the option group is required in zkCli
        raise CliError("org.apache.commons.cli.MissingOptionException: Missing required option: "
                       "[-n num soft quota, -b bytes soft quota, -N num hard quota, -B bytes hard quota]")
    if path.startswith(QUOTA_ROOT):
        sh.err.write(f"cannot set a quota under the path: {QUOTA_ROOT}\n")
        return
    quota = StatsTrack()
    for key in _QUOTA_KEYS.values():
        quota.stats[key] = -1
    for opt in given:
        try:
            value = int(cl.value(opt))
        except ValueError:
            sh.err.write("NumberFormatException happens when parsing the option value\n")
            return
        if opt in "nN" and value <= 0:
            sh.err.write("the num quota must be greater than zero\n")
            return
        if opt in "bB" and value < 0:
            sh.err.write("the bytes quota must be greater than or equal to zero\n")
            return
        quota.stats[_QUOTA_KEYS[opt]] = value
    try:
        await _create_quota(sh, path, quota)
    except (E.ZooKeeperError, ValueError) as e:
        raise wrap(e) from None


async def _create_quota(sh: Shell, path: str, quota: StatsTrack) -> None:
    zk = sh.zk
    if await zk.exists(path) is None:
        raise ValueError(f"{path} does not exist.")
    # No quota may sit above or below this one.
    quota_path = QUOTA_ROOT + path
    try:
        below: list[str] = []
        await visit_dfs(sh, quota_path, False, below.append)
        for p in below:
            if p != quota_path and LIMIT_NODE in await _children_or_none(sh, p):
                raise ValueError(f"{path} has a child {p[len(QUOTA_ROOT):]} which has a quota")
    except E.NoNodeError:
        pass
    parts = path.split("/")
    for i in range(1, len(parts) - 1):
        p = QUOTA_ROOT + "/".join(parts[: i + 1])
        children = await _children_or_none(sh, p)
        if children is None or not children:
            break
        if p != quota_path and LIMIT_NODE in children:
            raise ValueError(f"{path} has a parent {p[len(QUOTA_ROOT):]} which has a quota")
    node = QUOTA_ROOT
    for part in parts[1:]:
        node += "/" + part
        if await zk.exists(node) is None:
            try:
                await zk.create(node, None)
            except E.NodeExistsError:
                pass
    stat_path, limit_path = f"{node}/{STAT_NODE}", f"{node}/{LIMIT_NODE}"
    if await zk.exists(limit_path) is None:
        await zk.create(limit_path, quota.to_bytes())
        usage = StatsTrack()
        usage.stats.update(count=0, bytes=0)
        await zk.create(stat_path, usage.to_bytes())
        _check_quota(sh, StatsTrack((await zk.get_data(limit_path))[0]),
                     StatsTrack((await zk.get_data(stat_path))[0]))
    else:
        current = StatsTrack((await zk.get_data(limit_path))[0])
        for key, value in quota.stats.items():
            if value > -1:
                current.stats[key] = value
        _check_quota(sh, current, StatsTrack((await zk.get_data(stat_path))[0]))
        await zk.set_data(limit_path, current.to_bytes(), -1)


async def _children_or_none(sh: Shell, path: str) -> list[str] | None:
    try:
        return await sh.zk.get_children(path)
    except E.NoNodeError:
        return None


def _check_quota(sh: Shell, quota: StatsTrack, usage: StatsTrack) -> None:
    count, nbytes = usage.get("count"), usage.get("bytes")
    if (-1 < quota.get("count") < count) or (-1 < quota.get("countHardLimit") < count):
        sh.out.write(f"[Warning]: the count quota you create is less than the existing count:{count}\n")
    if (-1 < quota.get("bytes") < nbytes) or (-1 < quota.get("byteHardLimit") < nbytes):
        sh.out.write(f"[Warning]: the bytes quota you create is less than the existing bytes:{nbytes}\n")


@command("delquota", "[-n|-b|-N|-B] path", {"n": False, "b": False, "N": False, "B": False})
async def delquota(sh: Shell, cl: Parsed) -> None:
    if len(cl.args) < 2:
        raise CliError(COMMANDS["delquota"].usage)
    path = cl.args[1]
    given = _one_quota_option(cl)
    parent, limit_path = QUOTA_ROOT + path, f"{QUOTA_ROOT}{path}/{LIMIT_NODE}"
    zk = sh.zk
    try:
        if await zk.exists(limit_path) is None:
            sh.out.write(f"Quota does not exist for {path}\n")
            return
        current = StatsTrack((await zk.get_data(limit_path))[0])
        if not given:
            for child in await zk.get_children(parent):
                await zk.delete(f"{parent}/{child}", -1)
            node = parent
            while node != QUOTA_ROOT and not await zk.get_children(node):
                await zk.delete(node, -1)
                node = node[: node.rfind("/")]
        else:
            for opt in given:
                current.stats[_QUOTA_KEYS[opt]] = -1
            await zk.set_data(limit_path, current.to_bytes(), -1)
    except ValueError as e:
        raise wrap(e) from None
    except E.NoNodeError:
        sh.err.write(f"quota for {path} does not exist.\n")
    except E.ZooKeeperError as e:
        raise wrap(e) from None


async def _unsupported(sh: Shell, cl: Parsed) -> None:
    raise CliError(f"{cl.args[0]} is not supported by zkpy shell yet")


COMMANDS["reconfig"] = Command(
    "reconfig", "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | "
    "[-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]", {}, _unsupported)


# Handled by the shell itself (ZooKeeperMain.processZKCmd); listed for usage and completion.
async def _builtin(sh: Shell, cl: Parsed) -> None:  # pragma: no cover - never dispatched
    raise AssertionError("builtin")


for _name, _opts in (("connect", "host:port"), ("history", ""), ("redo", "cmdno"),
                     ("printwatches", "on|off"), ("quit", "")):
    COMMANDS[_name] = Command(_name, _opts, {}, _builtin, builtin=True)
