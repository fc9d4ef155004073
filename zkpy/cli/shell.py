"""``zkpy shell``: ZooKeeper 3.8's zkCli.sh, on zkpy's asyncio client.

    zkpy shell [-server host:port[,host:port...][/chroot]] [-timeout ms] [-r] [-waitforconnection]
               [cmd args...]

Without a command it is interactive: line editing, history kept in ~/.zkpy_history, tab
completion of commands and znode paths (prompt_toolkit), and zkCli's prompt.  With stdin
not a terminal it reads commands line by line and prints no prompt (zkCli without JLine).
With a command it runs that one command and exits non-zero if it failed.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from typing import TextIO

from zkpy.cli.shell_commands import COMMANDS, CliError, parse_options, usage_lines
from zkpy.client import ClientState, WatchedEvent, ZooKeeperClient

__all__ = ["Shell", "main", "split_line"]

HISTORY_FILE = "~/.zkpy_history"
_ARGS = re.compile(r"""\s*([^"']\S*|"[^"]*"|'[^']*')\s*""")
_QUOTED = re.compile(r"""^(['"])(.*)(\1)$""", re.S)

# ZooKeeper.States names, which zkCli's prompt shows.
_JAVA_STATES = {
    ClientState.CONNECTING: "CONNECTING",
    ClientState.SUSPENDED: "CONNECTING",
    ClientState.LOST: "CONNECTING",
    ClientState.CONNECTED: "CONNECTED",
    ClientState.CONNECTED_READ_ONLY: "CONNECTEDREADONLY",
    ClientState.EXPIRED: "CLOSED",
    ClientState.CLOSED: "CLOSED",
    ClientState.AUTH_FAILED: "AUTH_FAILED",
}


def split_line(line: str) -> list[str]:
    """ZooKeeperMain.parseCommand: words, or quoted strings with their quotes stripped."""
    words = []
    for m in _ARGS.finditer(line):
        w = m.group(1)
        q = _QUOTED.match(w)
        words.append(q.group(2) if q else w)
    return words


class Options:
    """zkCli's command-line options (ZooKeeperMain.MyCommandOptions.parseOptions)."""

    def __init__(self) -> None:
        self.server = "localhost:2181"
        self.timeout_ms = 30_000
        self.read_only = False
        self.wait_for_connection = False
        self.command: list[str] = []

    @classmethod
    def parse(cls, argv: list[str]) -> Options:
        o = cls()
        it = iter(argv)
        for opt in it:
            try:
                if opt == "-server":
                    o.server = next(it)
                elif opt == "-timeout":
                    o.timeout_ms = int(next(it))
                elif opt == "-r":
                    o.read_only = True
                elif opt == "-client-configuration":
                    next(it)  # Java client properties; nothing here needs them
                elif opt == "-waitforconnection":
                    o.wait_for_connection = True
            except StopIteration:
                raise CliError(f"Error: no argument found for option {opt}") from None
            except ValueError:
                raise CliError(f"Error: -timeout needs milliseconds, not {opt!r}") from None
            if not opt.startswith("-"):
                o.command = [opt, *it]
                break
        return o


class Shell:
    """The shell's state: connection, command counter, history, printwatches, exit code."""

    def __init__(self, options: Options, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.options = options
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.zk: ZooKeeperClient | None = None
        self.host = ""
        self.command_count = 0
        self.history: dict[int, str] = {}
        self.print_watches = True
        self.exit_code = 0
        self.words: list[str] = []
        self.quit = False
        self.on_state_change: list = []

    # ------------------------------------------------------------ connection

    def prompt(self) -> str:
        state = _JAVA_STATES[self.zk.state] if self.zk is not None else "NOT_CONNECTED"
        return f"[zk: {self.host}({state}) {self.command_count}] "

    def _watcher(self, event: WatchedEvent) -> None:
        if self.print_watches:
            self.out.write(f"\nWATCHER::\n\n{event}\n")
            self.out.flush()

    def _state_changed(self, state: ClientState) -> None:
        for cb in self.on_state_change:
            cb()

    async def connect(self, host: str) -> None:
        if self.zk is not None and self.zk.state.is_alive:
            await self.zk.close()
        self.host = host
        zk = ZooKeeperClient(host, self.options.timeout_ms, read_only=self.options.read_only,
                             default_watcher=self._watcher)
        zk.add_listener(self._state_changed)
        self.zk = zk
        zk.start_background()
        if self.options.wait_for_connection:
            try:
                await zk.wait_connected(self.options.timeout_ms / 1000)
            except (TimeoutError, Exception):
                await zk.close()
                raise CliError("org.apache.zookeeper.KeeperException$ConnectionLossException: "
                               "KeeperErrorCode = ConnectionLoss") from None

    async def close_quietly(self) -> None:
        if self.zk is not None and self.zk.state.is_alive:
            self.print_watches = False
            await self.zk.close(timeout_s=2.0)

    # ------------------------------------------------------------ commands

    async def execute_line(self, line: str) -> None:
        """One line typed at the prompt (ZooKeeperMain.executeLine)."""
        if not line.strip():
            return
        self.history[self.command_count] = line
        await self.process(split_line(line))
        self.command_count += 1

    async def process(self, words: list[str]) -> None:
        """Run one command; a failure prints zkCli's message and sets the exit code."""
        try:
            await self._process_zk_cmd(words)
            self.exit_code = 0
        except CliError as e:
            self.exit_code = e.exit_code
            self.err.write(e.message + "\n")
        except Exception as e:  # never a traceback in the shell
            self.exit_code = 1
            self.err.write(f"{type(e).__name__}: {e}\n")
        self.out.flush()
        self.err.flush()

    async def _process_zk_cmd(self, words: list[str]) -> None:
        if not words:
            self._usage()
            raise CliError("No command entered")
        cmd = words[0]
        if cmd == "help":
            # zkCli has no "help": it prints the usage for an unknown command. Print just that.
            self._usage()
            return
        if cmd not in COMMANDS:
            self._usage()
            raise CliError(f"Command not found: Command not found {cmd}", 127)
        if cmd == "quit":
            if self.zk is not None:
                await self.zk.close()
            self.quit = True
            return
        if cmd == "redo" and len(words) >= 2:
            try:
                i = int(words[1], 0)
            except ValueError:
                raise CliError(f'java.lang.NumberFormatException: For input string: "{words[1]}"') from None
            if self.command_count <= i or i < 0:
                raise CliError("Command index out of range")
            again = split_line(self.history[i])
            if again and again[0] == "redo":
                raise CliError("No redoing redos")
            self.history[self.command_count] = self.history[i]
            await self.process(again)
            return
        if cmd == "history":
            for i in range(max(self.command_count - 10, 0), self.command_count + 1):
                self.out.write(f"{i} - {self.history.get(i)}\n")
        elif cmd == "printwatches":
            if len(words) == 1:
                self.out.write(f"printwatches is {'on' if self.print_watches else 'off'}\n")
            else:
                self.print_watches = words[1] == "on"
        elif cmd == "connect":
            await self.connect(words[1] if len(words) >= 2 else self.host)
        # Everything below needs a live session (so do the builtins above: zkCli says so too).
        if self.zk is None or not self.zk.state.is_alive:
            self.out.write("Not connected\n")
            return
        command = COMMANDS[cmd]
        if command.builtin:
            return
        self.words = words
        await command.run(self, parse_options(command.spec, words))

    def _usage(self) -> None:
        self.err.write("\n".join(usage_lines()) + "\n")


# ------------------------------------------------------------------ interactive front ends


def _completer(shell: Shell):  # type: ignore[no-untyped-def]
    from prompt_toolkit.completion import Completer, Completion

    class ZkCompleter(Completer):
        """Commands, and children of the znode being typed (JLineZNodeCompleter)."""

        def get_completions(self, document, complete_event):  # type: ignore[no-untyped-def]
            return iter(())

        async def get_completions_async(self, document, complete_event) -> AsyncIterator[Completion]:  # type: ignore[no-untyped-def,override]
            text = document.text_before_cursor
            token = "" if text.endswith(" ") else (text.split(" ")[-1] if text else "")
            if token.startswith("/"):
                idx = token.rfind("/") + 1
                prefix = token[idx:]
                parent = "/" if idx == 1 else token[: idx - 1]
                zk = shell.zk
                if zk is None or not zk.connected:
                    return
                try:
                    children = await asyncio.wait_for(zk.get_children(parent), 5)
                except Exception:
                    return
                for child in sorted(children):
                    if child.startswith(prefix):
                        yield Completion(child, start_position=-len(prefix))
            else:
                for name in sorted(COMMANDS):
                    if name.startswith(token):
                        yield Completion(name, start_position=-len(token))

    return ZkCompleter()


async def _interactive(shell: Shell) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.patch_stdout import patch_stdout

    history = FileHistory(os.path.expanduser(HISTORY_FILE))
    session: PromptSession[str] = PromptSession(history=history, completer=_completer(shell),
                                                complete_while_typing=False)

    def refresh() -> None:
        app = session.app
        if app.is_running:
            app.invalidate()

    shell.on_state_change.append(refresh)
    # Output goes through prompt_toolkit only while the prompt is on screen (watch events
    # arriving then are printed above it); a command's own output goes straight out, in order.
    shell.out, shell.err = _Current("stdout"), _Current("stderr")
    while not shell.quit:
        try:
            with patch_stdout():
                line = await session.prompt_async(shell.prompt)
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        await shell.execute_line(line)


class _Current:
    """Writes to whatever sys.stdout / sys.stderr is at the moment (patched or not)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def write(self, text: str) -> int:
        return getattr(sys, self._name).write(text)

    def flush(self) -> None:
        getattr(sys, self._name).flush()


async def _lines_from_stdin() -> AsyncIterator[str]:
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        yield line.rstrip("\n")


async def _run(argv: list[str], stdin_is_tty: bool) -> int:
    try:
        options = Options.parse(argv)
    except CliError as e:
        sys.stderr.write(e.message + "\n")
        return 1
    shell = Shell(options)
    shell.out.write(f"Connecting to {options.server}\n")
    try:
        await shell.connect(options.server)
    except CliError as e:
        shell.err.write(e.message + "\n")
        return 1
    except ValueError as e:
        shell.err.write(f"{e}\n")
        return 1
    try:
        if options.command:
            await shell.process(options.command)
            return shell.exit_code
        shell.out.write("Welcome to ZooKeeper!\n")
        if stdin_is_tty:
            shell.out.write("JLine support is enabled\n")
            await _interactive(shell)
        else:
            shell.out.write("JLine support is disabled\n")
            shell.out.flush()
            async for line in _lines_from_stdin():
                await shell.execute_line(line)
                if shell.quit:
                    break
        return shell.exit_code
    finally:
        await shell.close_quietly()


def main(argv: list[str]) -> int:
    """``zkpy shell ARGS``: the exit status (0, 1 for a failed command, 127 for an unknown one)."""
    tty = sys.stdin.isatty()
    try:
        # Plain asyncio: prompt_toolkit drives the terminal from this loop.
        return asyncio.run(_run(list(argv), tty))
    except KeyboardInterrupt:
        return 130



if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
