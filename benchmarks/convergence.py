"""Convergence in Mininet: controller start -> programmed; policy edit -> enforced; loss.

    .venv/bin/python benchmarks/convergence.py [--controller sdnctl|faucet|both]
                                               [--edits 3] [--json FILE]

The lab: 10 switches (two linked leaves, 8 hypervisors each dual-homed to both)
and 50 VMs in two tenants of one segment each (tiers web/app/db by label, rules
any->web tcp/80+icmp, web->app tcp/8080+icmp, app->db tcp/5432), plus one spare
VM plugged on hv1 that the policy does not name yet. The same network is run by
sdnctl and, if asked and installed, by Faucet with the equivalent faucet.yaml
(benchmarks/peers/faucet_yaml.py: VLANs, a stack, per-port ACLs).

Streams (sdnctl.lab.experiments.stream: one probe every 10 ms, started before the
controller, static ARP on both ends so ARP retries do not blur the timings):
  U1 t1web0 -> t1web3   icmp, one long-lived echo id, across the fabric
  U2 t1app1 -> t1web0   icmp, a new connection per probe (an unedited rule)
  U3 t2web0 -> t2web3   icmp, long-lived, the other tenant
  U4 t1web24 -> t1web0  icmp, long-lived, both on hv1 (where the spare is plugged)
  N  t1app1 -> t1db2    udp/7000, new connection per probe: allowed only by edit E1
  S  t1spare -> t1web0  icmp, new connection per probe: works only once E2 adds the VM

Figures:
- start: controller start -> every switch programmed (sdnctl: the daemon's last
  acknowledged update; Faucet: the flow tables stop changing) and -> the first
  answered probe of every U stream; flows installed (ovs-ofctl dump-aggregate);
- E1, one-rule edit (t1 app->db gains udp/7000), then reverted, `--edits` times:
  save -> first answered N probe (or, on revert, last one), the daemon's own
  enforced_in_s, and probes lost on U1..U4 during the 3 s after the save;
- E2, add a VM (the spare, as t1 app): save -> first answered S probe, loss on U*.
- E3, link cut: hv1's uplink that carries U1 (found by its packet counters) is cut
  (both interfaces down) for 3 s, twice; the longest outage of U1 while cut, and
  probes lost after the link returns. Both leaves reach every hypervisor, so a
  backup path exists (sdnctl: fast-failover group in OVS; Faucet: its stack
  reroutes when it hears the port go down).
sdnctl picks an edit up from its file watch (50 ms polls); Faucet gets SIGHUP
right after the save (it has no watch by default), and its log says whether it
did a warm or a cold start. Edits start only once every U pair answers a ping
(steady state), after a 3 s window with no edit that shows the loss noise floor.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peers.faucet_run import Faucet, faucet_available, wait_stable  # noqa: E402
from benchmarks.peers.faucet_yaml import faucet_config  # noqa: E402
from sdnctl.bench import netgen  # noqa: E402
from sdnctl.bench.labnet import Net, open_net, wait_ping  # noqa: E402
from sdnctl.bench.report import median, print_table, write_json  # noqa: E402
from sdnctl.bindings import Bindings  # noqa: E402
from sdnctl.client.api import ApiError  # noqa: E402
from sdnctl.lab.experiments import loss  # noqa: E402
from sdnctl.lab.experiments.stream import Flow, Stream, Streams, streams  # noqa: E402
from sdnctl.lab.names import DPID_BITS, rebase_dpids  # noqa: E402
from sdnctl.lab.plan import LabError, plan_lab  # noqa: E402
from sdnctl.policy.model import Proto, Service  # noqa: E402
from sdnctl.tools import LAB_TOOLS, require_or_exit  # noqa: E402

N_HV, N_VMS = 8, 50
AFTER_EDIT_S = 3.0  # probes watched after an edit is applied
CUT_S, CUTS = 3.0, 2  # how long the link stays cut, how many times
STEADY_TIMEOUT_S = 300.0
APPLY_TIMEOUT_S = 90.0  # Faucet re-reads a large faucet.yaml slowly
ICMP, UDP7000 = Service(Proto.ICMP), Service(Proto.UDP, 7000, 7000)
UNAFFECTED = {  # name -> (flow, fresh)
    "U1": (Flow("t1web0", "t1web3", ICMP), False),
    "U2": (Flow("t1app1", "t1web0", ICMP), True),
    "U3": (Flow("t2web0", "t2web3", ICMP), False),
    "U4": (Flow("t1web24", "t1web0", ICMP), False),
}
NEW_RULE = Flow("t1app1", "t1db2", UDP7000)
NEW_VM = Flow("t1spare", "t1web0", ICMP)
SPARE = {"tenant": "t1", "segment": "net", "mac": "02:00:00:01:ff:fe", "ip": "10.1.0.250",
         "labels": {"tier": "app"}, "host": "hv1"}


def policies() -> dict[str, dict[str, Any]]:
    """base, base + E1 (app->db udp/7000), base + E2 (the spare VM), all: the lab's."""
    base = netgen.tiered_policy(N_VMS, [f"hv{h}" for h in range(1, N_HV + 1)])
    e1 = copy.deepcopy(base)
    for rule in e1["tenants"]["t1"]["rules"]:
        if (rule["from"], rule["to"]) == ("app", "db"):
            rule["allow"] = [*rule["allow"], "udp/7000"]
    e2 = copy.deepcopy(base)
    e2["vms"]["t1spare"] = dict(SPARE)
    return {"base": base, "e1": e1, "e2": e2}


# ---- controllers ------------------------------------------------------------------


@dataclass
class Controller:
    """What the scenario needs from a controller: start, apply a policy, figures."""

    name: str
    net: Net
    work: Path
    topology: dict[str, Any]
    started_at: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    policy_vms: list[str] = field(default_factory=list)

    def start(self, policy: dict[str, Any]) -> None: ...

    def programmed_at(self) -> float | None: ...

    def apply(self, policy: dict[str, Any]) -> float: ...

    def wait_applied(self, policy: dict[str, Any]) -> tuple[float | None, dict[str, Any]]: ...

    def stop(self) -> None: ...


class SdnctlController(Controller):
    def _paths(self) -> tuple[Path, Path]:
        return self.work / "policy.yaml", self.work / "topology.yaml"

    def start(self, policy: dict[str, Any]) -> None:
        self.policy_vms = list(policy["vms"])
        pol, topo = self._paths()
        netgen.write(policy, pol)
        netgen.write(self.topology, topo)
        self.net.start_daemon(pol, topo, self.work / "daemon.log")
        self.started_at = self.net.started_at
        # When its API first answers: the process is up (imports, OVSDB, listener).
        while time.monotonic() - self.started_at < 30:
            try:
                self.net.status()
                self.notes["daemon_up_s"] = round(time.monotonic() - self.started_at, 3)
                break
            except ApiError:
                time.sleep(0.02)

    def programmed_at(self) -> float | None:
        status = self.net.wait_programmed(vms=set(self.policy_vms))
        last = max(float(s["last_update"]) for s in status["switches"].values())
        return self.net.started_at + (last - self.net.started_wall)

    def apply(self, policy: dict[str, Any]) -> float:
        netgen.write(policy, self._paths()[0])
        return time.monotonic()

    def wait_applied(self, policy: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
        """(monotonic time the daemon reported the edit enforced, its figures)."""
        want = hashlib.sha256(netgen.dump(policy).encode()).hexdigest()
        deadline = time.monotonic() + APPLY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                pol = self.net.status()["policy"]
                if pol.get("sha256") == want and pol.get("enforced_in_s") is not None:
                    took = round(1000 * float(pol["enforced_in_s"]), 1)
                    return time.monotonic(), {"daemon_enforced_ms": took}
            except ApiError:
                pass
            time.sleep(0.02)
        return None, {"daemon_enforced_ms": None}

    def flow_mods(self) -> int:
        return sum(int(s.get("flow_mods_sent") or 0)
                   for s in self.net.status()["switches"].values())


class FaucetController(Controller):
    faucet: Faucet | None = None
    log_mark: int = 0

    def _doc(self, policy: dict[str, Any]) -> dict[str, Any]:
        pol, topo = netgen.load(policy, self.topology)
        live = self.net.bindings().ports  # the lab's ports, not ones planned for `policy`
        cfg = faucet_config(pol, topo, Bindings(MappingProxyType(
            {vm: ref for vm, ref in live.items() if vm in pol.vms})))
        self.notes["not_expressed"] = cfg.notes
        self.notes["acl_entries"] = cfg.acl_rules
        return cfg.doc

    def start(self, policy: dict[str, Any]) -> None:
        self.faucet = Faucet(self.work, self.net.controller_port)
        self.faucet.write_config(self._doc(policy))
        self.faucet.start()
        self.started_at = self.faucet.started_at

    def programmed_at(self) -> float | None:
        _count, at = wait_stable(lambda: sum(self.net.flows().values()), settle=3.0,
                                 timeout=120)
        return at

    def apply(self, policy: dict[str, Any]) -> float:
        assert self.faucet is not None
        self.log_mark = len(self.faucet.log_text())
        self.faucet.write_config(self._doc(policy))
        return self.faucet.reload()

    def wait_applied(self, policy: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
        """(monotonic time Faucet logged its warm/cold start for the edit, which kind).

        Faucet logs nothing for a datapath the edit leaves alone; an edit touching
        none would time out here (the scenario's edits all touch some)."""
        assert self.faucet is not None
        deadline = time.monotonic() + APPLY_TIMEOUT_S
        while time.monotonic() < deadline and not any(
                self.faucet.restarts(self.log_mark).values()):
            time.sleep(0.05)
        # Done when its log has been quiet for a second (it logs every datapath's
        # restart and every failed send), learning chatter aside.
        size, changed = self.faucet.activity(self.log_mark), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - changed < 1.0:
            time.sleep(0.1)
            if (now := self.faucet.activity(self.log_mark)) != size:
                size, changed = now, time.monotonic()
        applied = changed if time.monotonic() < deadline else None
        return applied, {"faucet_restarts": self.faucet.restarts(self.log_mark)}

    def stop(self) -> None:
        if self.faucet is not None:
            self.faucet.stop()


# ---- the scenario -----------------------------------------------------------------


def _static_arp(net: Net, flows: list[Flow]) -> None:
    """Neighbour entries both ways: a probe's timing is then the flows', not ARP's."""
    macs = {h.vm: h.mac for h in net.lab.plan.hosts}
    for f in flows:
        for a, b in ((f.src, f.dst), (f.dst, f.src)):
            net.hosts[a].cmd(f"ip neigh replace {net.addresses[b]} lladdr {macs[b]} "
                             "dev eth0 nud permanent")


def _lost(log: loss.StreamLog, t0: float, end: float) -> int:
    return loss.count_lost(log, t0 - 0.2, end)


def set_inactivity_probe(net: Net, ms: int) -> None:
    """How long OVS waits on a silent controller before dropping it (default 5 s)."""
    from sdnctl.lab.ovs import vsctl

    for bridge in net.bridges():
        for uuid in vsctl("get", "Bridge", bridge, "controller").strip("[]").split(", "):
            if uuid:
                vsctl("set", "Controller", uuid, f"inactivity_probe={ms}")


def run_controller(kind: str, edits: int, tmp: Path,
                   inactivity_probe_ms: int | None = None) -> dict[str, Any]:
    pols = policies()
    topo = rebase_dpids(netgen.leaf_pair_topology(N_HV),
                        netgen.DPID_BASE | (1 << DPID_BITS if kind == "faucet" else 0))
    everyone = copy.deepcopy(pols["e2"])  # the lab plugs the spare VM too
    policy, topology = netgen.load(everyone, topo)
    plan = plan_lab(policy, topology, "bc" + kind[0])
    work = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=tmp))
    result: dict[str, Any] = {"controller": kind + (
        f" (probe {inactivity_probe_ms} ms)" if inactivity_probe_ms else "")}
    all_flows = [f for f, _ in UNAFFECTED.values()] + [NEW_RULE, NEW_VM]
    with open_net(plan, "sdnctl" if kind == "sdnctl" else "peer") as net:
        cls = SdnctlController if kind == "sdnctl" else FaucetController
        ctl: Controller = cls(kind, net, work, topo)
        if inactivity_probe_ms:
            set_inactivity_probe(net, inactivity_probe_ms)
        _static_arp(net, all_flows)
        try:
            with streams(net.hosts, net.addresses) as s:
                result.update(_scenario(ctl, s, pols, edits))
            result["flows_installed"] = net.flows()
            result["notes"] = ctl.notes
        finally:
            ctl.stop()
    return result


def _scenario(ctl: Controller, s: Streams, pols: dict[str, dict[str, Any]],
              edits: int) -> dict[str, Any]:
    running: dict[str, Stream] = {name: s.start(f, fresh=fresh)
                                  for name, (f, fresh) in UNAFFECTED.items()}
    running["N"] = s.start(NEW_RULE, fresh=True)
    running["S"] = s.start(NEW_VM, fresh=True)
    ctl.start(pols["base"])
    programmed = ctl.programmed_at()
    for f, _fresh in UNAFFECTED.values():  # steady state: every U pair answers
        wait_ping(ctl.net, f.src, f.dst, STEADY_TIMEOUT_S)
    steady = time.monotonic() - ctl.started_at
    time.sleep(2.0)
    quiet_from = time.monotonic()
    time.sleep(AFTER_EDIT_S + 0.2)  # a window with no edit: the noise floor of loss

    e1: list[dict[str, Any]] = []
    windows: list[tuple[float, float]] = []  # (saved, end of the watch) of each E1 edit

    def edit(policy: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
        saved = ctl.apply(policy)
        applied, figures = ctl.wait_applied(policy)
        figures["applied_after_ms"] = None if applied is None else round(
            1000 * (applied - saved), 1)
        end = (applied or saved) + AFTER_EDIT_S
        time.sleep(max(0.0, end - time.monotonic()))
        return saved, end, figures

    for i in range(edits * 2 - 1):
        allow = i % 2 == 0
        saved, end, figures = edit(pols["e1"] if allow else pols["base"])
        windows.append((saved, end))
        e1.append({"allow": allow, **figures})
    edit(pols["base"])  # the last E1 edit allowed: back to the base policy before E2
    saved_e2, end_e2, e2_fig = edit(pols["e2"])
    cuts = cut_uplink(ctl.net, "hv1", UNAFFECTED["U1"][0])
    logs = {name: st.stop() for name, st in running.items()}

    first_ok = {n: loss.first_ok_after(logs[n], ctl.started_at) for n in UNAFFECTED}
    out: dict[str, Any] = {
        "programmed_s": None if programmed is None else round(programmed - ctl.started_at, 3),
        "steady_s": round(steady, 3),
        "first_probe_s": {n: None if v is None else round(v, 3) for n, v in first_ok.items()},
        "all_streams_answered_s": None if None in first_ok.values()
        else round(max(first_ok.values()), 3),  # type: ignore[type-var]
        "noise_lost": {n: _lost(logs[n], quiet_from + 0.2, quiet_from + AFTER_EDIT_S)
                       for n in UNAFFECTED},
    }
    for (saved, end), fig in zip(windows, e1, strict=True):
        if fig["allow"]:
            took = loss.first_ok_after(logs["N"], saved, end)
        else:
            took = loss.last_ok_after(logs["N"], saved, end)
        fig["enforced_ms"] = None if took is None else round(took * 1000, 1)
        fig["unaffected_lost"] = {n: _lost(logs[n], saved, end) for n in UNAFFECTED}
        fig["watched_s"] = round(end - saved, 2)
    out["e1"] = e1
    took = loss.first_ok_after(logs["S"], saved_e2, end_e2)
    out["e2"] = {**e2_fig, "enforced_ms": None if took is None else round(took * 1000, 1),
                 "unaffected_lost": {n: _lost(logs[n], saved_e2, end_e2) for n in UNAFFECTED},
                 "watched_s": round(end_e2 - saved_e2, 2)}
    out["e3"] = []
    for link, cut, back, end in cuts:
        down = loss.gaps(logs["U1"], cut, back)
        out["e3"].append({
            "link": link,
            "loss_window_ms": round(1000 * loss.longest_window_s(down, logs["U1"]), 1),
            "lost_while_cut": loss.count_lost(logs["U1"], cut, back),
            "lost_on_return": loss.count_lost(logs["U1"], back, end)})
    return out


def _restarts(r: dict[str, Any]) -> str:
    """Faucet's warm/cold starts per edit, e.g. "E1 warm x5, E2 cold"; "-" for sdnctl."""
    def kind(e: dict[str, Any]) -> str:
        got = e.get("faucet_restarts") or {}
        return "+".join(k for k in ("cold", "warm", "dp_down") if got.get(k)) or "none"

    if "faucet_restarts" not in r["e2"]:
        return "-"
    e1 = sorted({kind(e) for e in r["e1"]})
    return f"E1 {'/'.join(e1)}, E2 {kind(r['e2'])}"


def _tx_packets(intf: str) -> int:
    return int(Path(f"/sys/class/net/{intf}/statistics/tx_packets").read_text())


def cut_uplink(net: Net, switch: str, flow: Flow) -> list[tuple[str, float, float, float]]:
    """Cut `switch`'s uplink that carries `flow` CUTS times; (link, cut, up, end) each."""
    bridge = net.lab.plan.bridges[switch]
    ups = [(ln.a_intf, ln.b_intf) for ln in net.lab.plan.links if ln.a_bridge == bridge]
    ups += [(ln.b_intf, ln.a_intf) for ln in net.lab.plan.links if ln.b_bridge == bridge]
    before = {a: _tx_packets(a) for a, _ in ups}
    time.sleep(1.0)
    carrying = max(ups, key=lambda u: _tx_packets(u[0]) - before[u[0]])
    marks = []
    for _ in range(CUTS):
        cut = time.monotonic()
        for intf in carrying:
            subprocess.run(["ip", "link", "set", intf, "down"], check=False)
        time.sleep(CUT_S)
        back = time.monotonic()
        for intf in carrying:
            subprocess.run(["ip", "link", "set", intf, "up"], check=False)
        time.sleep(AFTER_EDIT_S)
        marks.append((f"{carrying[0]}<->{carrying[1]}", cut, back, time.monotonic()))
    return marks


def summarise(r: dict[str, Any]) -> dict[str, Any]:
    allows = [e for e in r["e1"] if e["allow"]]
    denies = [e for e in r["e1"] if not e["allow"]]
    lost_e1 = [sum(e["unaffected_lost"].values()) for e in r["e1"]]
    return {
        "controller": r["controller"],
        "programmed_s": r["programmed_s"],
        "all_streams_answered_s": r["all_streams_answered_s"],
        "flows_total": sum(r["flows_installed"].values()),
        "flows_hv_median": median(v for k, v in r["flows_installed"].items()
                                  if k.startswith("hv")),
        "e1_allow_ms": median(e["enforced_ms"] for e in allows),
        "e1_deny_ms": median(e["enforced_ms"] for e in denies),
        "e1_daemon_ms": median(e.get("daemon_enforced_ms") for e in r["e1"]),
        "e1_applied_ms": median(e.get("applied_after_ms") for e in r["e1"]),
        "restarts": _restarts(r),
        "e1_lost_max": max(lost_e1) if lost_e1 else None,
        "e2_add_vm_ms": r["e2"]["enforced_ms"],
        "e2_lost": sum(r["e2"]["unaffected_lost"].values()),
        "noise_lost": sum(r["noise_lost"].values()),
        "steady_s": r["steady_s"],
        "e3_window_ms": median(c["loss_window_ms"] for c in r["e3"]),
        "e3_lost_on_return": sum(c["lost_on_return"] for c in r["e3"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--controller", choices=["sdnctl", "faucet", "both"], default="both")
    ap.add_argument("--edits", type=int, default=3, help="E1 edits that allow (reverts between)")
    ap.add_argument("--inactivity-probe-ms", type=int,
                    help="OVS inactivity probe towards the controller (default: OVS's 5 s); "
                         "a busy Faucet is disconnected when it misses it")
    ap.add_argument("--json")
    args = ap.parse_args()
    require_or_exit(*LAB_TOOLS, "ping", what="benchmarks/convergence.py")
    kinds = ["sdnctl", "faucet"] if args.controller == "both" else [args.controller]
    skipped: dict[str, str] = {}
    if "faucet" in kinds and (why := faucet_available()):
        kinds.remove("faucet")
        skipped["faucet"] = why
    tmp = Path(tempfile.mkdtemp(prefix="sdnctl-bench-conv-"))
    results = []
    for kind in kinds:
        try:
            results.append(run_controller(kind, args.edits, tmp, args.inactivity_probe_ms))
        except LabError as exc:
            skipped[kind] = str(exc)
            print(f"{kind}: {exc}", file=sys.stderr)
        if results:
            print(f"{kind}: {results[-1]}", flush=True)
    rows = [summarise(r) for r in results]
    print_table(rows, [
        ("controller", "controller"), ("programmed_s", "start->programmed s"),
        ("all_streams_answered_s", "start->all probes s"), ("steady_s", "steady s"),
        ("flows_total", "flows"),
        ("flows_hv_median", "flows/hv"), ("e1_allow_ms", "E1 allow ms"),
        ("e1_deny_ms", "E1 revert ms"), ("e1_daemon_ms", "daemon ms"),
        ("e1_applied_ms", "applied ms"), ("restarts", "Faucet restarts"),
        ("e1_lost_max", "E1 lost"), ("e2_add_vm_ms", "E2 add-VM ms"), ("e2_lost", "E2 lost"),
        ("noise_lost", "lost, no edit"), ("e3_window_ms", "E3 cut window ms"),
        ("e3_lost_on_return", "E3 lost on return")],
        f"convergence, 10 switches / {N_VMS} VMs (times from controller start or from the "
        "save; lost = probes lost on U1-U4 within 3 s of an edit)")
    for name, why in skipped.items():
        print(f"{name}: not run: {why}")
    write_json("convergence", {"summary": rows, "runs": results, "skipped": skipped}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
