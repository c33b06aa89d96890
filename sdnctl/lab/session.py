"""One lifecycle for everything a lab makes: whatever happens, it is all removed again.

`LabSession` is a registry on `contextlib.ExitStack`: everything a lab makes (the
Mininet net, bridges, namespaces, veths, processes) is registered with its undo the
moment it exists, and closing the session runs every undo in reverse order of
creation, even when one of them fails. The lab runner, the hostile-VM suite, the
experiments, the benchmarks' nets and the integration tests all use it:

    with LabSession("lab") as session:
        lab = session.lab(plan, (LOCALHOST, port))
        daemon = session.spawn("controller daemon", command, session.tmp / "daemon.log")
        ...                       # any exception, Ctrl-C or SIGTERM: all undone

While a session is open, SIGTERM and SIGHUP raise `Stopped` (so they unwind like
Ctrl-C does); while it closes, SIGINT, SIGTERM and SIGHUP are ignored (a second
Ctrl-C must not strand bridges). Processes are stopped by PID (or process group),
bridges and interfaces removed by name: never `mn -c`, never by process name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from sdnctl.lab.ovs import vsctl

if TYPE_CHECKING:  # mininet is imported only when a lab is built
    from sdnctl.lab.build import Lab
    from sdnctl.lab.plan import LabPlan

STOP_GRACE_S = 5.0  # SIGTERM, then this long before SIGKILL


class Stopped(BaseException):
    """Raised from a signal handler so that the session unwinds and tears down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _handling(handler: Any, *signums: int) -> Iterator[None]:
    saved = {}
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        for sig in signums:
            saved[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _raise_stopped_in(owner: int) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        if os.getpid() != owner:
            # A fork that has not exec'ed yet (pyroute2 runs code in namespaces so,
            # and stops it with SIGTERM): it must die as by default, not unwind a
            # copy of our stack and tear down the lab a second time.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Stopped(signum)

    return handler


def exit_code(interruption: KeyboardInterrupt | Stopped, say: Callable[[str], None]) -> int:
    """Say how a command was stopped; its exit code, 128 + the signal's number."""
    if isinstance(interruption, Stopped):
        say(f"stopped by {interruption}")
        return 128 + interruption.signum
    say("interrupted")
    return 128 + signal.SIGINT


def signals_raise() -> contextlib.AbstractContextManager[None]:
    """SIGTERM and SIGHUP raise `Stopped`, so `finally` blocks and sessions tear down."""
    return _handling(_raise_stopped_in(os.getpid()), signal.SIGTERM, signal.SIGHUP)


def signals_ignored() -> contextlib.AbstractContextManager[None]:
    """SIGINT, SIGTERM and SIGHUP ignored: for a teardown that must not be cut short."""
    return _handling(signal.SIG_IGN, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_process(proc: subprocess.Popen[Any], group: bool = False,
                 first: int = signal.SIGTERM, grace: float = STOP_GRACE_S) -> None:
    """Stop `proc` by its PID, reap it and close its pipes: `first`, then SIGKILL after
    `grace` seconds.

    `group`: signal its whole process group (it was started in a session of its own,
    so its children go with it), even when the leader has already exited.
    """
    try:
        for sig in (first, signal.SIGKILL):
            if not group and proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(proc.pid, sig)
                else:
                    os.kill(proc.pid, sig)
            if _ended(proc, group, grace):
                return
        raise RuntimeError(f"pid {proc.pid} still runs {grace:.0f} s after SIGKILL")
    finally:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _ended(proc: subprocess.Popen[Any], group: bool, timeout: float) -> bool:
    """Whether `proc` (and with `group`, every process of its group) ended in time."""
    deadline = time.monotonic() + timeout
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    while group and group_alive(proc.pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def group_alive(pgid: int) -> bool:
    """Whether process group `pgid` has a process that is not a zombie (/proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def start_process(command: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """`command` in a process group of its own (so it and its children stop together,
    see `stop_process`), stdout and stderr to `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _run(*args: str) -> str:
    """Run a command; its stdout, whatever its exit code."""
    return subprocess.run(list(args), capture_output=True, text=True, check=False).stdout


class LabSession:
    """What one lab made, each thing with its undo; closing undoes it all, last made first.

    `name` starts the session's messages (`say`) and its temp dir's name. Undo
    failures do not stop the teardown: they are collected in `errors` and said. The
    temp dir (`tmp`, made on first use) goes after everything else, unless an error
    escaped the session, an undo failed, or `keep()` was called.
    """

    def __init__(self, name: str, say: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.say = say or self._say
        self.errors: list[str] = []
        self._undo = contextlib.ExitStack()
        self._signals = contextlib.ExitStack()
        self._tmp: Path | None = None
        self._kept: list[str] = []
        self._closed = False

    def _say(self, message: str) -> None:
        print(f"{self.name}: {message}", file=sys.stderr, flush=True)

    # ---- the lifecycle ------------------------------------------------------------

    def __enter__(self) -> LabSession:
        self._signals.enter_context(signals_raise())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None and issubclass(exc_type, Exception):
            self.keep(f"{exc_type.__name__}: {exc}")  # an interruption is not a failure
        try:
            self.close()
        finally:
            self._signals.close()

    def close(self) -> None:
        """Undo everything, last made first; then the temp dir. Twice is harmless."""
        if self._closed:
            return
        self._closed = True
        with signals_ignored():
            self._undo.close()
            if self._tmp is not None:
                if self._kept or self.errors:
                    why = "; ".join(self._kept) or "teardown problems"
                    self.say(f"kept {self._tmp} (logs) for inspection ({why})")
                else:
                    shutil.rmtree(self._tmp, ignore_errors=True)

    def add(self, what: str, undo: Callable[[], object]) -> None:
        """Run `undo` at teardown, before everything added earlier."""
        self._undo.callback(self._run_undo, what, undo)

    def _run_undo(self, what: str, undo: Callable[[], object]) -> None:
        try:
            undo()
        except Exception as exc:  # keep going: what was made before must still go
            self.errors.append(f"{what}: {exc}")
            self.say(f"teardown problem: {what}: {exc}")

    @property
    def tmp(self) -> Path:
        """The session's temp dir (logs, file copies), made on first use."""
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"sdnctl-{self.name}-"))
        return self._tmp

    def keep(self, why: str) -> None:
        """Keep the temp dir at teardown (something to look into)."""
        self._kept.append(why)

    # ---- what a lab makes ------------------------------------------------------------

    def process(self, proc: subprocess.Popen[Any], what: str = "", group: bool = False,
                grace: float = STOP_GRACE_S) -> subprocess.Popen[Any]:
        """Stop `proc` at teardown by its PID (its process group when `group`)."""
        self.add(what or f"pid {proc.pid}",
                         lambda: stop_process(proc, group, grace=grace))
        return proc

    def spawn(self, what: str, command: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        """`start_process`; its process group is stopped at teardown (the process and
        whatever it started)."""
        return self.process(start_process(command, log), what, group=True)

    def lab(self, plan: LabPlan, controller: tuple[str, int],
            more_controllers: Sequence[tuple[str, int]] = ()) -> Lab:
        """Build the Mininet lab of `plan` (`build_lab`); `stop_lab` at teardown."""
        from sdnctl.lab.build import build_lab, stop_lab

        lab = build_lab(plan, controller, more_controllers)
        self.add("network", lambda: stop_lab(lab))
        return lab

    def bridge(self, name: str) -> str:
        """Delete OVS bridge `name` at teardown (register it, then create it)."""
        self.add(f"bridge {name}", lambda: vsctl("--if-exists", "del-br", name))
        return name

    def port(self, bridge: str, name: str) -> str:
        """Delete port `name` of `bridge` at teardown."""
        self.add(f"port {name}",
                         lambda: vsctl("--if-exists", "del-port", bridge, name))
        return name

    def veth(self, name: str) -> str:
        """Delete interface `name` (a veth takes its peer with it) at teardown; already
        gone is fine (it goes with its peer, or with the namespace it was moved into)."""
        self.add(f"veth {name}", lambda: _run("ip", "link", "del", name))
        return name

    def netns(self, name: str) -> str:
        """Kill every process in network namespace `name`, then delete it, at teardown
        (`ip netns del` alone leaves the processes running)."""

        def undo() -> None:
            for pid in _run("ip", "netns", "pids", name).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            _run("ip", "netns", "del", name)

        self.add(f"netns {name}", undo)
        return name
