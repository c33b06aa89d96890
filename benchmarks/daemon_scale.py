"""The daemon end to end at scale: 5k and 20k scattered VMs, all bound, real switches.

    sudo .venv/bin/python benchmarks/daemon_scale.py                 # 5,000 then 20,000
    sudo .venv/bin/python benchmarks/daemon_scale.py 5000 --real 40 --json out.json

Per size, the data centre of sdnctl.bench.datacentre (scattered: tenants of 125
VMs spread over every hypervisor, 25 VMs per hypervisor, leaf/spine fabric), built
by sdnctl.bench.boundnet:

- the policy and topology files are written as YAML (every dpid moved up by
  DPID_BASE, so no other lab on this machine shares them);
- a private `ovsdb-server` (its own socket and database in a temp dir, no
  ovs-vswitchd) is filled in one transaction with one Bridge per hypervisor
  (`datapath_id` written by hand, as vswitchd would) and one Port/Interface per VM
  (`external_ids:vm-id`, `attached-mac`, and `ofport` written by hand): every VM
  of the policy is bound, at the port `planned_bindings` gives it;
- `--real` hypervisors (default 30, spread over the data centre) also exist as
  REAL userspace bridges on this machine's Open vSwitch (datapath_type=netdev,
  OpenFlow 1.3, fail_mode=secure, the hypervisor's dpid, uplinks 1 and 2 as a
  patch-port pair so the daemon sees their fabric links up); no VM is plugged
  there and no packet is sent. Their controller (the daemon, max_backoff=1000,
  `--inactivity-probe`) is set, in one transaction, once /status says the daemon
  is running: a bridge that met a closed port backs off up to 8 s, OVS's delay;
- `sdnctl run --ovsdb unix:PRIVATE --listen 127.0.0.1:FREE --stats-interval S`
  is started and watched through its status API only (polled every `--poll` s;
  every poll's latency is kept, split by the daemon's start-up phase; a poll
  costs the daemon hundreds of ms at 20k VMs, so do not poll much faster).

Figures, from the daemon's spawn (wall clock, the same machine's):
- bindings: when OVSDB's bindings were read (the daemon's `startup` timeline) and
  when /status first showed `bindings_ready` with every VM bound;
- compiled: when every switch's tables were computed (`startup.compiled_s` and
  `compile_ms`);
- programmed: when the first and the last real bridge acknowledged their first
  update (`last_update`), the time per bridge (controllers set -> last barrier,
  divided by the bridges: the app programs them one after the other), the flows
  each holds (ovs-ofctl dump-aggregate, checked against the daemon's count);
- one-rule edit (tenant t0's web->app rule gains tcp/9090; the file is replaced
  by rename): the daemon's `enforced_in_s` (edit seen -> last barrier) and from
  the save to that barrier;
- VM move: a VM of one real bridge moves to another in one OVSDB transaction
  (its Port leaves the first Bridge, a new Port with its vm-id joins the second);
  from the commit to the last barrier of the real bridges that changed;
- RSS (VmRSS, and VmHWM the peak) after start-up and after the edits.

Two defaults differ from the daemon's and OVS's own, because with those the
programming never finishes (docs/benchmarks.md, "daemon at scale"):
`--stats-interval 0` (the daemon's default, 10 s, reads every flow of every
switch: 30 x 7.8k flows every 10 s saturate it) and `--inactivity-probe 120000`.

A table is printed and JSON written to benchmarks/results/daemon_scale.json.
Everything it creates (daemon, ovsdb-server, bridges, temp dir) is removed at
the end, also on failure or SIGTERM. Needs root and a running Open vSwitch.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bench import netgen  # noqa: E402
from sdnctl.bench.boundnet import (  # noqa: E402
    DPID_BASE,
    PrivateOvsdb,
    move_vm,
    policy_doc,
    populate,
    topology_doc,
)
from sdnctl.bench.datacentre import datacentre  # noqa: E402
from sdnctl.bench.report import print_table, write_json  # noqa: E402
from sdnctl.lab.names import free_port  # noqa: E402
from sdnctl.lab.session import LabSession  # noqa: E402
from sdnctl.tools import require_or_exit  # noqa: E402
from sdnctl.topology.model import Role  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SDNCTL = REPO / ".venv" / "bin" / "sdnctl"
OVS_RUN = Path("/var/run/openvswitch")
EDIT_TENANT, EDIT_RULE, EDIT_SERVICE = "t0", ("web", "app"), "tcp/9090"
START_TIMEOUT_S = 900.0
PROGRAM_TIMEOUT_S = 300.0  # then the row records the failure and the next size runs
EDIT_TIMEOUT_S = 120.0
# OVS drops a controller that leaves its echo request unanswered for 5 s. The daemon's
# app spends ~3 s of one thread on each hypervisor's first update (7-8k flows here),
# and os-ken's receive loops block while the app's event queue is full, so with tens
# of bridges connecting at once echoes go unanswered: every bridge is dropped, comes
# back, is read again (more seconds each), is dropped again... With OVS's default
# (--inactivity-probe 5000) 30 bridges at 5,000 VMs were still cycling after 15 min
# (821 disconnects). The default here lets the programming finish, to measure it.
INACTIVITY_PROBE_MS = 120_000
SETTLE_S = 2.0  # no real bridge updated for this long: a change has gone out everywhere
Doc = dict[str, Any]


# ---- the edit ----------------------------------------------------------------------


def edited(doc: Doc) -> Doc:
    """t0's web->app rule gains tcp/9090."""
    out = copy.deepcopy(doc)
    for rule in out["tenants"][EDIT_TENANT]["rules"]:
        if (rule["from"], rule["to"]) == EDIT_RULE:
            rule["allow"].append(EDIT_SERVICE)
            return out
    raise ValueError(f"no {EDIT_RULE} rule in tenant {EDIT_TENANT}")


# ---- real bridges ---------------------------------------------------------------------


def vsctl(*args: str, timeout: float = 120) -> str:
    res = subprocess.run(["ovs-vsctl", f"--timeout={int(timeout)}", *args],
                         capture_output=True, text=True, timeout=timeout + 10)
    if res.returncode != 0:
        raise RuntimeError(f"ovs-vsctl {' '.join(args[:6])}...: {res.stderr.strip()}")
    return res.stdout


def add_bridges(names: dict[str, str], dpids: dict[str, int]) -> None:
    """Real netdev bridges (bridge name -> hypervisor), in one ovs-vsctl transaction; no
    controller yet (`set_controllers`)."""
    cmd: list[str] = []
    for br, hv in names.items():
        cmd += ["--", "add-br", br,
                "--", "set", "bridge", br, "datapath_type=netdev", "fail_mode=secure",
                "protocols=OpenFlow13", f"other-config:datapath-id={dpids[hv]:016x}",
                "--", "add-port", br, f"{br}a", "--", "set", "interface", f"{br}a",
                "type=patch", f"options:peer={br}b", "ofport_request=1",
                "--", "add-port", br, f"{br}b", "--", "set", "interface", f"{br}b",
                "type=patch", f"options:peer={br}a", "ofport_request=2"]
    vsctl(*cmd)
    for br in names:  # a bridge without datapath_type=netdev is accepted but useless here
        got = vsctl("get", "bridge", br, "datapath_type").strip()
        if got != "netdev":
            raise RuntimeError(f"{br}: datapath_type {got}")


def set_controllers(bridges: list[str], of_port: int, probe_ms: int) -> None:
    """Point every bridge at the daemon, in one transaction. Done once the daemon
    listens: a bridge that met a closed port first retries only after its backoff (up
    to 8 s, whatever max_backoff says), which is OVS's delay, not the daemon's.
    `probe_ms`: the controller's inactivity_probe (OVS's default is 5000)."""
    cmd: list[str] = []
    for br in bridges:
        cmd += ["--", "set-controller", br, f"tcp:127.0.0.1:{of_port}",
                "--", "set", "controller", br, "max_backoff=1000",
                f"inactivity_probe={probe_ms}"]
    vsctl(*cmd)


def del_bridges(names: list[str]) -> None:
    cmd: list[str] = []
    for br in names:
        cmd += ["--", "--if-exists", "del-br", br]
    if cmd:
        vsctl(*cmd)


def flow_count(bridge: str) -> int | None:
    res = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate",
                          f"unix:{OVS_RUN}/{bridge}.mgmt"], capture_output=True, text=True)
    if res.returncode != 0 or "flow_count=" not in res.stdout:
        return None
    return int(res.stdout.split("flow_count=")[1].split()[0])


# ---- the daemon and its API -------------------------------------------------------------



def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


@dataclass
class Poll:
    at: float  # wall clock when the request was sent
    latency_s: float
    status: Doc | None
    phase: str
    size: int = 0


class Api:
    def __init__(self, address: str) -> None:
        self.url = f"http://{address}/status"

    def status(self, timeout: float = 60.0) -> tuple[Doc | None, float, int]:
        """(/status or None if it did not answer, latency, bytes)."""
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(self.url, timeout=timeout) as resp:
                body = resp.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return None, time.perf_counter() - t0, 0
        took = time.perf_counter() - t0
        return json.loads(body), took, len(body)


class Watcher:
    """Polls /status from a thread; keeps every answer's time, latency and phase."""

    def __init__(self, api: Api, interval_s: float) -> None:
        self.api, self.interval = api, interval_s
        self.polls: list[Poll] = []
        self.latest: Doc | None = None
        self._stop = threading.Event()
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            at = time.time()
            doc, took, size = self.api.status()
            phase = "down"
            if doc is not None:
                phase = str(doc["daemon"].get("startup", {}).get("phase", "?"))
            with self._cv:
                self.polls.append(Poll(at, took, doc, phase, size))
                if doc is not None:
                    self.latest = doc
                self._cv.notify_all()
            self._stop.wait(self.interval)

    def wait(self, check: Any, timeout: float, what: str) -> Doc:
        """The first status (from now on) for which `check(status)` is true."""
        deadline = time.monotonic() + timeout
        with self._cv:
            seen = len(self.polls)
            while True:
                for p in self.polls[seen:]:
                    if p.status is not None and check(p.status):
                        return p.status
                seen = len(self.polls)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"not within {timeout:.0f} s: {what}")
                self._cv.wait(min(left, 1.0))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(70)


# ---- one size ---------------------------------------------------------------------------


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _real_updates(status: Doc, real: dict[str, str]) -> dict[str, int]:
    return {hv: int(status["switches"][hv]["updates"]) for hv in real.values()}


def measure(n_vms: int, n_real: int, poll_s: float, keep: bool, probe_ms: int,
            stats_s: float) -> Doc:
    row: Doc = {"vms": n_vms, "placement": "scattered"}
    t = time.perf_counter()
    policy, topology = datacentre(n_vms, "scattered")
    pdoc, tdoc = policy_doc(policy), topology_doc(topology)
    hvs = sorted((s for s in topology.switches.values() if s.role is Role.HYPERVISOR),
                 key=lambda s: s.dpid)
    row.update(hypervisors=len(hvs), switches=len(topology.switches))
    step = len(hvs) / n_real
    real_hvs = [hvs[int(i * step)].name for i in range(min(n_real, len(hvs)))]
    real = {f"dsb{os.getpid()}h{hv[2:]}": hv for hv in real_hvs}  # bridge -> hypervisor
    with LabSession("daemon_scale") as session:
        if keep:
            session.keep("--keep")
        tmp = session.tmp
        ppath = netgen.write(pdoc, tmp / "policy.yaml")
        tpath = netgen.write(tdoc, tmp / "topology.yaml")
        row["policy_file_mib"] = round(ppath.stat().st_size / 2**20, 2)
        row["files_s"] = _r(time.perf_counter() - t, 2)

        t = time.perf_counter()
        db = PrivateOvsdb(tmp)
        session.add("private ovsdb-server", db.stop)
        plugged = populate(db, policy, topology, DPID_BASE)
        row["ovsdb_fill_s"] = _r(time.perf_counter() - t, 2)

        of_port, api_port = free_port(), free_port()
        dpids = {s.name: DPID_BASE + s.dpid for s in hvs}
        session.add("real bridges", lambda: del_bridges(list(real)))
        t = time.perf_counter()
        add_bridges(real, dpids)
        row["real_bridges"] = len(real)
        row["stats_interval_s"] = stats_s
        row["bridges_s"] = _r(time.perf_counter() - t, 2)

        api = Api(f"127.0.0.1:{api_port}")
        log = (tmp / "daemon.log").open("wb")
        spawned = time.time()
        proc = session.process(subprocess.Popen(
            [str(SDNCTL), "run", "-p", str(ppath), "-t", str(tpath),
             "--listen", f"127.0.0.1:{of_port}", "--ovsdb", db.remote,
             "--api", f"127.0.0.1:{api_port}", "--stats-interval", str(stats_s)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=log), "daemon", grace=20.0)
        log.close()
        watcher = Watcher(api, poll_s)
        session.add("status poller", watcher.stop)
        print(f"[{n_vms}] daemon pid {proc.pid}, log {tmp / 'daemon.log'}", flush=True)

        def alive() -> None:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited {proc.returncode}: "
                                   + (tmp / "daemon.log").read_text()[-2000:])

        def up(st: Doc) -> bool:
            alive()
            return True

        first = watcher.wait(up, START_TIMEOUT_S, "the API answers")
        first_poll = next(p for p in watcher.polls if p.status is not None)
        row["api_first_answer_s"] = _r(first_poll.at + first_poll.latency_s - spawned)
        row["api_first_phase"] = first["daemon"].get("startup", {}).get("phase")

        def bound(st: Doc) -> bool:
            alive()
            return bool(st["bindings_ready"]) and len(st["bindings"]) == n_vms

        st = watcher.wait(bound, START_TIMEOUT_S, "every VM bound")
        seen_bound = watcher.polls[-1].at
        row["bound_seen_s"] = _r(seen_bound - spawned)

        def compiled(st: Doc) -> bool:
            alive()
            return st["daemon"].get("startup", {}).get("compiled_s") is not None

        st = watcher.wait(compiled, START_TIMEOUT_S, "every switch compiled")
        startup = st["daemon"]["startup"]
        row["startup"] = startup
        # The daemon's own timeline is from run_daemon's start; add the spawn (imports).
        offset = float(st["daemon"]["started_at"]) - spawned
        row["daemon_start_offset_s"] = _r(offset)
        row["bindings_s"] = _r(offset + startup["bindings_s"]) if startup.get(
            "bindings_s") is not None else None
        row["compiled_s"] = _r(offset + startup["compiled_s"])
        row["start_compile_ms"] = startup.get("compile_ms")
        row["startup_flows"] = startup.get("flows")

        def running(st: Doc) -> bool:
            alive()
            return st["daemon"].get("startup", {}).get("phase") == "running"

        watcher.wait(running, START_TIMEOUT_S, "OpenFlow up")
        connect_at = time.time()
        set_controllers(list(real), of_port, probe_ms)
        row["inactivity_probe_ms"] = probe_ms
        row["controllers_set_s"] = _r(connect_at - spawned)

        def programmed(st: Doc) -> bool:
            alive()
            return all(st["switches"][hv]["programmed"] for hv in real.values())

        try:
            st = watcher.wait(programmed, PROGRAM_TIMEOUT_S, "every real bridge programmed")
        except TimeoutError as exc:
            row["error"] = str(exc)
            row["connects"] = (tmp / "daemon.log").read_text().count(" connected from ")
            st = watcher.latest or {}
            row["programmed_now"] = sum(bool(s["programmed"]) for s in st.get(
                "switches", {}).values())
            row["rss_mib"] = round(rss_kib(proc.pid)["VmRSS"] / 1024, 1)
            return row
        startup = st["daemon"]["startup"]
        row["startup"] = startup
        row["openflow_s"] = _r(offset + startup["openflow_s"])
        done = sorted(float(st["switches"][hv]["last_update"]) for hv in real.values())
        row["first_programmed_s"] = _r(done[0] - spawned)
        row["programmed_s"] = _r(done[-1] - spawned)
        row["programming_s"] = _r(done[-1] - connect_at)  # controllers set -> last barrier
        # The app programs one bridge at a time: the figure is that time, per bridge.
        row["per_bridge_s"] = _r((done[-1] - connect_at) / len(done))
        flows = {br: flow_count(br) for br in real}
        want = {br: st["switches"][hv]["flows"] for br, hv in real.items()}
        row["real_flows_each"] = max(v or 0 for v in flows.values())
        row["real_flows_match"] = all(flows[br] == want[br] for br in real)
        row["connects"] = (tmp / "daemon.log").read_text().count(" connected from ")
        row["flows_total_desired"] = sum(int(s["flows"]) for s in st["switches"].values())
        time.sleep(1.0)
        row["rss_start_mib"] = round(rss_kib(proc.pid)["VmRSS"] / 1024, 1)

        # Latency of /status: during the start-up phases and at rest.
        by_phase: dict[str, list[float]] = {}
        for p in watcher.polls:
            if p.status is not None:
                by_phase.setdefault(p.phase, []).append(p.latency_s)
        row["api_latency_ms"] = {  # by start-up phase ("running": while programming)
            phase: {"n": len(v), "median": _r(1000 * sorted(v)[len(v) // 2], 1),
                    "max": _r(1000 * max(v), 1)} for phase, v in by_phase.items()}
        row["status_kib"] = max(p.size for p in watcher.polls) // 1024

        # (d) a one-rule edit, from the save.
        new_doc = edited(pdoc)
        text = netgen.dump(new_doc)  # (yaml.safe_dump of 20k VMs takes seconds: not timed)
        want_sha = hashlib.sha256(text.encode()).hexdigest()
        tmp_policy = ppath.with_name(ppath.name + ".tmp")
        tmp_policy.write_text(text)
        saved = time.time()
        tmp_policy.replace(ppath)  # as an editor saves: the daemon never sees half a file

        def enforced(st: Doc) -> bool:
            alive()
            pol = st["policy"]
            return pol.get("sha256") == want_sha and pol.get("enforced_in_s") is not None

        st = watcher.wait(enforced, EDIT_TIMEOUT_S, "the edit enforced")
        pol = st["policy"]
        row["edit_enforced_ms"] = _r(1000 * float(pol["enforced_in_s"]), 1)
        row["edit_from_save_ms"] = _r(1000 * (float(pol["enforced_at"]) - saved), 1)
        row["edit_compile"] = st["last_compile"]
        row["edit_real_switches"] = sum(
            1 for hv in real.values()
            if (st["switches"][hv]["last_update"] or 0) > saved)

        # (e) a VM move between two real bridges, in one OVSDB commit.
        time.sleep(SETTLE_S)
        before = _real_updates(watcher.latest or st, real)
        src = real_hvs[0]
        vm = next(name for name, (hv, _p, _u) in sorted(plugged.ports.items()) if hv == src)
        dst = real_hvs[len(real_hvs) // 2]
        moved_at = time.time()
        new_port = move_vm(db, plugged, policy, vm, dst)
        row["move"] = f"{vm}: {src} -> {dst}:{new_port}"

        def rebound(st: Doc) -> bool:
            alive()
            return st["bindings"].get(vm) == f"{dst}:{new_port}"

        watcher.wait(rebound, EDIT_TIMEOUT_S, f"{vm} bound at {dst}")
        row["move_bound_seen_ms"] = _r(1000 * (watcher.polls[-1].at - moved_at), 1)

        def settled(st: Doc) -> bool:
            alive()
            now = _real_updates(st, real)
            if now[src] <= before[src] or now[dst] <= before[dst]:
                return False
            last = max(float(st["switches"][hv]["last_update"] or 0) for hv in real.values())
            return time.time() - last > SETTLE_S

        st = watcher.wait(settled, EDIT_TIMEOUT_S, "the move programmed")
        changed = [hv for hv, n in _real_updates(st, real).items() if n > before[hv]]
        row["move_real_switches"] = len(changed)
        row["move_to_last_barrier_ms"] = _r(1000 * (max(
            float(st["switches"][hv]["last_update"]) for hv in changed) - moved_at), 1)
        row["move_compile"] = st["last_compile"]
        mem = rss_kib(proc.pid)
        row["rss_after_edits_mib"] = round(mem["VmRSS"] / 1024, 1)
        row["rss_peak_mib"] = round(mem["VmHWM"] / 1024, 1)
        lat = [p.latency_s for p in watcher.polls[-20:] if p.status is not None]
        row["api_latency_at_rest_ms"] = _r(1000 * sorted(lat)[len(lat) // 2], 1) if lat else None
        return row


COLUMNS = [
    ("vms", "VMs"), ("switches", "switches"), ("real_bridges", "real"),
    ("api_first_answer_s", "API up s"), ("bindings_s", "bound s"),
    ("compiled_s", "compiled s"), ("start_compile_ms", "(compile ms)"),
    ("openflow_s", "OpenFlow up s"), ("first_programmed_s", "1st real programmed s"),
    ("programmed_s", "last real programmed s"), ("per_bridge_s", "(s per bridge)"),
    ("real_flows_each", "flows/bridge"),
    ("edit_enforced_ms", "edit ms"), ("edit_from_save_ms", "(from save)"),
    ("move_to_last_barrier_ms", "move ms"), ("rss_start_mib", "RSS MiB"),
    ("rss_after_edits_mib", "(after edits)"), ("rss_peak_mib", "(peak)"),
    ("api_latency_ms.compiling.max", "API ms while compiling (max)"),
    ("api_latency_ms.running.max", "(while programming)"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[5000, 20000])
    ap.add_argument("--real", type=int, default=30, help="real bridges (default 30)")
    ap.add_argument("--poll", type=float, default=1.0,
                    help="seconds between /status polls (default %(default)s)")
    ap.add_argument("--inactivity-probe", type=int, default=INACTIVITY_PROBE_MS, metavar="MS",
                    help="the real bridges' controller inactivity_probe (default "
                    "%(default)s; OVS's own default, 5000, see the module docstring)")
    ap.add_argument("--stats-interval", type=float, default=0.0, metavar="S",
                    help="the daemon's --stats-interval (default 0: no flow-stats polls; "
                    "the daemon's own default, 10, see the module docstring)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (files, logs)")
    ap.add_argument("--json", help="write the results here (default benchmarks/results/)")
    args = ap.parse_args()
    def interrupted(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # so that every `finally` tears down what it built

    signal.signal(signal.SIGTERM, interrupted)
    if os.geteuid() != 0:
        print("daemon_scale: needs root (real bridges on Open vSwitch)", file=sys.stderr)
        return 2
    require_or_exit("ovs-vsctl", "ovs-ofctl", "ovsdb-tool", "ovsdb-server",
                    what="benchmarks/daemon_scale.py")
    rows = []
    for n in args.sizes:
        row = measure(n, args.real, args.poll, args.keep, args.inactivity_probe,
                      args.stats_interval)
        print(json.dumps(row, indent=1, default=str), flush=True)
        rows.append(row)
    print_table(rows, COLUMNS, "sdnctl run at scale (scattered, every VM bound; s from spawn)")
    write_json("daemon_scale", {"rows": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
