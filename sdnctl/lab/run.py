"""`sdnctl lab run`: build the lab, start the controller, probe, judge, tear down.

Exit codes: 0 the data plane matched the policy on every probe; 1 some probe
disagreed (LEAK or BLOCKED) or never ran; 2 bad input (files, names, a bridge of
that name already exists); 3 the lab could not run (daemon died, switches not
programmed in time, a VM got no DHCP lease, probe agents failed); 128+N when
stopped by signal N. Whatever happens, everything the lab made is removed before
returning.

Once every switch is programmed, each VM drops the address it was built with and
boots its network with a real DHCP client (udhcpc), as a cloud image would: the
probes then use what DHCP handed out (address, router, MTU).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from sdnctl.lab.dhcpclient import NoLease, boot_addresses
from sdnctl.lab.plan import HOST_INTF, LabError, LabPlan, plan_lab
from sdnctl.policy.load import load_policy
from sdnctl.policy.model import Policy
from sdnctl.topology.load import load_topology
from sdnctl.verify.semantics import probe_services
from sdnctl.yamlsrc import LoadError

if TYPE_CHECKING:  # imported lazily at run time: they load mininet
    from sdnctl.lab.build import Lab
    from sdnctl.lab.probe import ProbeServers

PROGRAM_TIMEOUT = 60.0  # seconds for the daemon to program every switch
LOCALHOST = "127.0.0.1"


class Stopped(BaseException):
    """Raised from a signal handler so that `finally` blocks tear the lab down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _say(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------- daemon


def daemon_command(policy: Path, topology: Path, listen: str, api: str) -> list[str]:
    """`sdnctl run` with the venv's interpreter, so the lab needs no PATH setup."""
    return [
        sys.executable, "-c", "import sys; from sdnctl.cli import main; sys.exit(main())",
        "run", "-p", str(policy), "-t", str(topology), "--listen", listen, "--api", api,
    ]


def start_daemon(command: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """The controller in its own process group (so it and its children die together)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_until_programmed(
    api: str,
    switches: Sequence[str],
    bindings: Mapping[str, str],
    daemon: subprocess.Popen[bytes],
    timeout: float,
) -> str | None:
    """None once the daemon has bound every VM and programmed every switch.

    Otherwise, at `timeout`, what is still missing. `bindings` is VM -> "switch:port"
    as the lab plugged them: switches reported programmed before the daemon saw a
    VM's binding would drop that VM's traffic, and the lab would blame the policy.
    Polls through api_client.wait_programmed in short slices so that a daemon that
    died is noticed at once (LabError) rather than after the whole timeout.
    """
    from sdnctl.southbound.api_client import wait_programmed

    deadline = time.monotonic() + timeout
    while True:
        if daemon.poll() is not None:
            raise LabError(f"the controller daemon exited with code {daemon.returncode}")
        left = deadline - time.monotonic()
        try:
            status = wait_programmed(api, switches, timeout=max(0.1, min(1.0, left)))
        except TimeoutError as exc:
            problem = str(exc).partition(", ")[2] or str(exc)
        else:
            unbound = _unbound(status, bindings)
            if not unbound:
                return None
            problem = f"VMs not bound as plugged: {unbound}"
            time.sleep(0.1)
        if left <= 1.0:  # that was the last slice
            return f"after {timeout:.0f} s: {problem}"


def _unbound(status: Mapping[str, Any], bindings: Mapping[str, str]) -> str:
    """The VMs the daemon has not bound where the lab plugged them, with its reasons."""
    live = status.get("bindings", {})
    why = {p.get("vm"): p.get("reason") for p in status.get("unknown_ports", [])
           if isinstance(p, dict)}
    return ", ".join(
        f"{vm} at {where}" + (f" ({why[vm]})" if why.get(vm) else f" (daemon: {live.get(vm)})")
        for vm, where in bindings.items()
        if live.get(vm) != where
    )


def _count(items: Sized, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("h") else "s")
    return f"{len(items)} {noun if len(items) == 1 else plural}"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------ teardown


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM (and SIGHUP) unwind like Ctrl-C does, so `finally` tears down."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise Stopped(signum)

    saved = {}
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        for sig in (signal.SIGTERM, signal.SIGHUP):
            saved[sig] = signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C must not interrupt the teardown and strand bridges."""
    saved = {}
    with contextlib.suppress(ValueError):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            saved[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@dataclass
class _Session:
    """Everything a run has made, so teardown can undo exactly that."""

    tmp: Path
    lab: Lab | None = None
    servers: ProbeServers | None = None
    daemon: subprocess.Popen[bytes] | None = None
    keep_tmp: bool = False
    errors: list[str] = field(default_factory=list)

    def teardown(self) -> None:
        with _signals_ignored():
            steps = [
                ("probe agents", lambda: self.servers and self.servers.stop()),
                ("controller daemon", lambda: self.daemon and stop_daemon(self.daemon)),
                ("network", lambda: self.lab and _stop_lab(self.lab)),
            ]
            for what, step in steps:
                try:
                    step()
                except Exception as exc:  # keep going: the next step must still run
                    self.errors.append(f"stopping the {what}: {exc}")
            if self.keep_tmp:
                _say(f"kept {self.tmp} (daemon log) for inspection")
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
            for error in self.errors:
                _say(f"teardown problem: {error}")


def _stop_lab(lab: Lab) -> None:
    from sdnctl.lab.build import stop_lab

    stop_lab(lab)


# ----------------------------------------------------------------------- run


def run_lab(
    topology_path: str | Path,
    policy_path: str | Path,
    report_path: str | Path | None = None,
    prefix: str = "",
    controller_port: int | None = None,
    api_port: int | None = None,
    keep_going: bool = False,
) -> int:
    """Run the lab once and return the exit code (see the module docstring).

    `prefix` goes before every switch and host name, so labs can run side by side.
    `keep_going`: probe even when not every switch got programmed in time (the
    report then shows what the partial data plane does) instead of giving up.
    """
    topology_path, policy_path = Path(topology_path).resolve(), Path(policy_path).resolve()
    try:
        topology = load_topology(topology_path)
        policy = load_policy(policy_path, topology)
        plan = plan_lab(policy, topology, prefix)
    except LoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except (LabError, OSError) as exc:
        _say(str(exc))
        return 2
    if len(plan.hosts) < 2:
        _say("fewer than two VMs are placed on hypervisors: nothing to probe")
        return 2
    if plan.unplaced:
        _say(f"not probed (no hypervisor `host`): {', '.join(plan.unplaced)}")

    session = _Session(Path(tempfile.mkdtemp(prefix="sdnctl-lab-")))
    try:
        with signals_raise():
            return _run(session, plan, policy, topology_path, policy_path, report_path,
                        controller_port, api_port, keep_going)
    except KeyboardInterrupt:
        _say("interrupted")
        return 128 + signal.SIGINT
    except Stopped as exc:
        _say(f"stopped by {exc}")
        return 128 + exc.signum
    except Exception:  # a bug or a surprise: say so, but still tear down and exit 3
        _say(f"the lab failed:\n{traceback.format_exc()}")
        session.keep_tmp = True
        return 3
    finally:
        session.teardown()


def _run(
    session: _Session,
    plan: LabPlan,
    policy: Policy,
    topology_path: Path,
    policy_path: Path,
    report_path: str | Path | None,
    controller_port: int | None,
    api_port: int | None,
    keep_going: bool,
) -> int:
    # Imported here: loading mininet is only worth it once the input is good.
    from sdnctl.lab.build import build_lab, check_names_free
    from sdnctl.lab.probe import probe_matrix, start_servers
    from sdnctl.lab.report import (
        format_matrix,
        format_summary,
        judge_probes,
        report_json,
        write_report,
    )
    from sdnctl.render.matrix import (
        write_lab_heatmap,
    )

    listen_port = controller_port or free_port()
    api_port = api_port or free_port()
    while api_port == listen_port:
        api_port = free_port()
    listen, api = f"{LOCALHOST}:{listen_port}", f"{LOCALHOST}:{api_port}"
    switches = sorted(plan.bridges)
    vms = tuple(h.vm for h in plan.hosts)
    services = probe_services(policy)
    timings: dict[str, float] = {}

    try:
        clashes = check_names_free(plan)
    except LabError as exc:  # a program the lab runs is missing
        _say(str(exc))
        return 3
    if clashes:
        _say("refusing to build the lab:\n  " + "\n  ".join(clashes))
        return 2
    started = time.monotonic()
    try:
        session.lab = build_lab(plan, (LOCALHOST, listen_port))
    except LabError as exc:
        _say(str(exc))
        return 3
    lab = session.lab
    timings["build_s"] = round(time.monotonic() - started, 2)
    _say(f"built {_count(switches, 'switch')} and {_count(vms, 'VM')}"
         f" in {timings['build_s']:.1f} s")

    try:
        session.servers = start_servers(lab.hosts, services)
        log = session.tmp / "daemon.log"
        session.daemon = start_daemon(daemon_command(policy_path, topology_path, listen, api), log)
        _say(f"controller pid {session.daemon.pid} on {listen}, API {api}, log {log}")
        started = time.monotonic()
        plugged = {h.vm: f"{h.switch}:{h.port}" for h in plan.hosts}
        waiting = wait_until_programmed(api, switches, plugged, session.daemon, PROGRAM_TIMEOUT)
        timings["programmed_s"] = round(time.monotonic() - started, 2)
        if waiting is None:
            _say(f"{_count(plugged, 'VM')} bound and {_count(switches, 'switch')} programmed"
                 f" in {timings['programmed_s']:.1f} s")
        else:
            _say(f"not ready {waiting}")
            if not keep_going:
                session.keep_tmp = True
                _say(f"daemon log tail:\n{_tail(log)}")
                return 3
            _say("probing anyway (keep going)")
        started = time.monotonic()
        addresses = {h.vm: str(h.ip) for h in plan.hosts}
        leases = boot_addresses(lab.hosts, addresses, HOST_INTF, session.tmp)
        timings["dhcp_s"] = round(time.monotonic() - started, 2)
        median = statistics.median(lease.took_s for lease in leases.values())
        _say(f"{_count(leases, 'VM')} took their addresses by DHCP in"
             f" {timings['dhcp_s']:.1f} s (median lease {median:.2f} s)")
        started = time.monotonic()
        results = probe_matrix(lab.hosts, addresses, services)
        timings["probe_s"] = round(time.monotonic() - started, 2)
        _say(f"{len(results)} probes in {timings['probe_s']:.1f} s")
    except (LabError, NoLease) as exc:
        _say(str(exc))
        session.keep_tmp = True
        return 3

    report = judge_probes(policy, vms, services, results)
    print(format_matrix(report))
    print(format_summary(report))
    if report_path is not None:
        document = report_json(
            report,
            {
                "topology": str(topology_path),
                "policy": str(policy_path),
                "prefix": plan.prefix,
                "unplaced": list(plan.unplaced),
                "all_programmed": waiting is None,
                "timings": timings,
            },
        )
        write_report(report_path, document)
        heatmap = Path(report_path).with_suffix(".png")
        write_lab_heatmap(document["probes"], heatmap,
                          f"measured reachability: {Path(policy_path).name}")
        _say(f"report written to {report_path}, heat map to {heatmap}")
    if report.failures:
        session.keep_tmp = True
        return 1
    return 0
