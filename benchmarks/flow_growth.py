"""Flow-count growth of one group-to-group rule: N sources x M destinations x K services.

    .venv/bin/python benchmarks/flow_growth.py [--no-lab] [--json FILE]

Compiled (pure): for N, M in {10, 100, 1000} and K in {1, 10}, one tenant, one
rule `src -> dst` allowing K single TCP ports, every VM on one hypervisor. The
`acl` stage's rule flows (everything but its 4 fixed flows) should be N+M+K+1:
one conjunction clause per source, per destination, per service, plus the
conjunction's own flow. Compared with the N*M*K flows of a naive expansion, and
with the ACL entries of the equivalent faucet.yaml (benchmarks/peers/faucet_yaml:
N*M*K forward entries, as many stateless reply entries, one ARP entry per port).

Lab (default when root and Faucet are available; --no-lab skips): for the
smaller sizes, the same policy on a one-switch Mininet lab, programmed once by
sdnctl and once by Faucet; flows installed counted with `ovs-ofctl
dump-aggregate`, with the time from controller start to a stable flow table.
Then a one-rule edit (a second rule: src -> dst icmp), EDITS times each way:
time from the save until a fresh ping src0 -> first dst is answered (sdnctl by
its file watch, and with SIGHUP right after the save; Faucet with SIGHUP).
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peers.faucet_run import Faucet, faucet_available, wait_stable  # noqa: E402
from benchmarks.peers.faucet_yaml import faucet_config, growth_acl_rules  # noqa: E402
from sdnctl.bench import netgen  # noqa: E402
from sdnctl.bench.labnet import Net, open_net  # noqa: E402
from sdnctl.bench.report import median, print_table, write_json  # noqa: E402
from sdnctl.bindings import planned_bindings  # noqa: E402
from sdnctl.compile.compiler import compile_network  # noqa: E402
from sdnctl.lab.names import rebase_dpids  # noqa: E402
from sdnctl.lab.ovs import flow_count  # noqa: E402
from sdnctl.lab.plan import plan_lab  # noqa: E402
from sdnctl.tools import LAB_TOOLS, require_or_exit  # noqa: E402

SIZES = (10, 100, 1000)
KS = (1, 10)
LAB_SIZES = ((10, 10, 1), (10, 10, 10), (30, 10, 3))
EDITS = 3


def compiled_row(n: int, m: int, k: int) -> dict[str, object]:
    policy, topo = netgen.load(netgen.growth_policy(n, m, k), netgen.single_topology())
    fs = compile_network(policy, topo, planned_bindings(policy, topo))["hv1"]
    # The rule's own flows: its conjunction and clauses (owners rule:* and vm:*), not
    # the stage's fixed flows (owner base) nor the tenant's default drop (tenant:*).
    rule_flows = sum(1 for f in fs.flows if f.stage == "acl"
                     and f.owner.startswith(("rule:", "vm:")))
    faucet = growth_acl_rules(n, m, k)
    return {
        "n": n, "m": m, "k": k,
        "sdnctl_acl_rule_flows": rule_flows, "n_plus_m_plus_k_plus_1": n + m + k + 1,
        "as_expected": rule_flows == n + m + k + 1,
        "sdnctl_switch_flows": len(fs.flows),
        "naive_nmk": n * m * k,
        "faucet_acl_entries": sum(faucet.values()),
        "faucet_over_sdnctl": round(sum(faucet.values()) / rule_flows, 1),
    }


def _with_icmp(doc: dict[str, Any]) -> dict[str, Any]:
    """The one-rule edit of the lab part: a second rule, src -> dst icmp."""
    out = copy.deepcopy(doc)
    out["tenants"]["t1"]["rules"].append({"from": "src", "to": "dst", "allow": ["icmp"]})
    return out


def _ping_ok(net: Net, src: str, dst: str) -> bool:
    out = net.hosts[src].cmd(f"ping -n -c 1 -W 0.05 {net.addresses[dst]}")
    return " 0% packet loss" in out


def _until(want: bool, net: Net, src: str, dst: str, t0: float,
           timeout: float = 60.0) -> float | None:
    """Seconds from t0 until a fresh ping src -> dst is (want=True) or is not answered."""
    while time.monotonic() - t0 < timeout:
        if _ping_ok(net, src, dst) == want:
            return time.monotonic() - t0
    return None


def _static_arp(net: Net, a: str, b: str) -> None:
    macs = {h.vm: h.mac for h in net.lab.plan.hosts}
    for x, y in ((a, b), (b, a)):
        net.hosts[x].cmd(f"ip neigh replace {net.addresses[y]} lladdr {macs[y]} dev eth0 "
                         "nud permanent")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


def lab_row(n: int, m: int, k: int, tmp: Path) -> dict[str, object]:
    """Flows installed on a real bridge by sdnctl, then by Faucet, for the same policy,
    and the time a one-rule edit (src -> dst icmp) takes to let a ping through."""
    pol_doc = netgen.growth_policy(n, m, k)
    topo_doc = rebase_dpids(netgen.single_topology(), netgen.DPID_BASE)
    policy, topo = netgen.load(pol_doc, topo_doc)
    pol_path = netgen.write(pol_doc, tmp / f"growth-{n}-{m}-{k}.policy.yaml")
    topo_path = netgen.write(topo_doc, tmp / "growth.topology.yaml")
    src, dst = "src0", f"dst{n}"
    row: dict[str, object] = {"n": n, "m": m, "k": k}
    with open_net(plan_lab(policy, topo, "bgs"), "sdnctl") as net:
        bridge = net.bridges()[0]
        _static_arp(net, src, dst)
        net.start_daemon(pol_path, topo_path, tmp / "daemon.log")
        net.wait_programmed()
        flows, settled = wait_stable(lambda: flow_count(bridge), settle=1.0)
        row["sdnctl_flows_installed"] = flows
        row["sdnctl_program_s"] = round(settled - net.started_at, 2)
        row["denied_before_edit"] = not _ping_ok(net, src, dst)
        assert net.daemon is not None
        watch, hup = [], []
        for _ in range(EDITS):
            netgen.write(_with_icmp(pol_doc), pol_path)  # picked up by the file watch
            watch.append(_until(True, net, src, dst, time.monotonic()))
            netgen.write(pol_doc, pol_path)
            _until(False, net, src, dst, time.monotonic())
            netgen.write(_with_icmp(pol_doc), pol_path)
            t0 = time.monotonic()
            os.kill(net.daemon.pid, signal.SIGHUP)  # reload now, no poll or settle
            hup.append(_until(True, net, src, dst, t0))
            netgen.write(pol_doc, pol_path)
            os.kill(net.daemon.pid, signal.SIGHUP)
            _until(False, net, src, dst, time.monotonic())
        row["sdnctl_edit_ms"] = _ms(median(watch))
        row["sdnctl_edit_sighup_ms"] = _ms(median(hup))
    cfg = faucet_config(policy, topo)
    edited = faucet_config(netgen.load(_with_icmp(pol_doc), topo_doc)[0], topo)
    work = Path(tempfile.mkdtemp(prefix="faucet-", dir=tmp))
    with open_net(plan_lab(policy, topo, "bgf"), "peer") as net:
        bridge = net.bridges()[0]
        _static_arp(net, src, dst)
        faucet = Faucet(work, net.controller_port)
        faucet.write_config(cfg.doc)
        try:
            faucet.start()
            flows, settled = wait_stable(lambda: flow_count(bridge), settle=3.0, timeout=120)
            row["faucet_flows_installed"] = flows
            row["faucet_program_s"] = round(settled - faucet.started_at, 2)
            row["faucet_acl_entries"] = cfg.acl_rules
            row["faucet_denied_before_edit"] = not _ping_ok(net, src, dst)
            took = []
            for _ in range(EDITS):
                faucet.write_config(edited.doc)
                took.append(_until(True, net, src, dst, faucet.reload()))
                faucet.write_config(cfg.doc)
                _until(False, net, src, dst, faucet.reload())
            row["faucet_edit_sighup_ms"] = _ms(median(took))
            row["faucet_restarts"] = faucet.restarts()
            if not faucet.alive():
                row["faucet_error"] = faucet.log_text()[-500:]
        finally:
            faucet.stop()
    row["faucet_over_sdnctl"] = round(
        int(row["faucet_flows_installed"]) / max(1, int(row["sdnctl_flows_installed"])), 1)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-lab", action="store_true", help="compiled counts only")
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = [compiled_row(n, m, k) for k in KS for n in SIZES for m in SIZES]
    print_table(rows, [("n", "N"), ("m", "M"), ("k", "K"),
                       ("sdnctl_acl_rule_flows", "sdnctl acl flows"),
                       ("n_plus_m_plus_k_plus_1", "N+M+K+1"), ("naive_nmk", "naive N*M*K"),
                       ("faucet_acl_entries", "Faucet ACL entries"),
                       ("faucet_over_sdnctl", "Faucet/sdnctl")],
                "one rule, compiled (sdnctl: acl-stage flows of that rule on the hypervisor)")
    all_linear = all(r["as_expected"] for r in rows)
    print(f"goal: flows grow as N+M+K: {'met' if all_linear else 'MISSED'} "
          f"({sum(bool(r['as_expected']) for r in rows)}/{len(rows)} sizes exactly N+M+K+1)")
    lab_rows: list[dict[str, object]] = []
    why_not = "--no-lab" if args.no_lab else (
        "not root" if os.geteuid() != 0 else faucet_available())
    if why_not is None:
        require_or_exit(*LAB_TOOLS, "ping", what="benchmarks/flow_growth.py's lab (--no-lab: not)")
        tmp = Path(tempfile.mkdtemp(prefix="sdnctl-bench-growth-"))
        for n, m, k in LAB_SIZES:
            lab_rows.append(lab_row(n, m, k, tmp))
            print(f"lab {n}x{m}x{k}: {lab_rows[-1]}", flush=True)
        print_table(lab_rows, [("n", "N"), ("m", "M"), ("k", "K"),
                               ("sdnctl_flows_installed", "sdnctl flows"),
                               ("sdnctl_program_s", "sdnctl s"),
                               ("faucet_flows_installed", "Faucet flows"),
                               ("faucet_program_s", "Faucet s"),
                               ("faucet_over_sdnctl", "Faucet/sdnctl"),
                               ("sdnctl_edit_ms", "sdnctl edit ms (watch)"),
                               ("sdnctl_edit_sighup_ms", "sdnctl edit ms (SIGHUP)"),
                               ("faucet_edit_sighup_ms", "Faucet edit ms (SIGHUP)")],
                    "installed on OVS (whole bridge, ovs-ofctl dump-aggregate)")
    else:
        print(f"lab part skipped: {why_not}")
    write_json("flow_growth", {"compiled": rows, "lab": lab_rows, "lab_skipped": why_not,
                               "goal_met": all_linear}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
