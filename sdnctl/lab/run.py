"""`sdnctl lab run`: build the lab, start the controller, probe, judge, tear down.

Exit codes: 0 the data plane matched the policy on every probe; 1 some probe
disagreed (LEAK or BLOCKED) or never ran; 2 bad input (files, names, a bridge of
that name already exists); 3 the lab could not run (daemon died, switches not
programmed in time, a VM got no DHCP lease, probe agents failed); 128+N when
stopped by signal N. Whatever happens, everything the lab made is removed before
returning.

Once every switch is programmed, each VM drops the address it was built with and
boots its network with a real DHCP client (udhcpc), as a cloud image would: the
probes then use what DHCP handed out (address, router, MTU). A VM in a segment with
`subnet6` then turns IPv6 on and takes its address and default route from the
controller's router advertisement (sdnctl.lab.slaac); every pair of such VMs is
probed in IPv6 as well, and gets a matrix of its own.
"""

from __future__ import annotations

import statistics
import sys
import time
import traceback
from collections.abc import Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnctl.lab.controller import PROGRAM_TIMEOUT, daemon_command, plugged, wait_until_programmed
from sdnctl.lab.dhcpclient import NoLease, boot_addresses
from sdnctl.lab.names import LOCALHOST, free_ports
from sdnctl.lab.plan import HOST_INTF, LabError, LabPlan, plan_lab
from sdnctl.lab.session import LabSession, Stopped, exit_code
from sdnctl.policy.load import load_policy
from sdnctl.policy.model import Policy
from sdnctl.topology.load import load_topology
from sdnctl.verify.semantics import probe_services
from sdnctl.yamlsrc import LoadError

if TYPE_CHECKING:
    from sdnctl.lab.report import LabReport


def _say(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def _count(items: Sized, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("h") else "s")
    return f"{len(items)} {noun if len(items) == 1 else plural}"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


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

    try:
        with LabSession("lab", _say) as session:
            try:
                return _run(session, plan, policy, topology_path, policy_path, report_path,
                            controller_port, api_port, keep_going)
            except Exception:  # a bug or a surprise: say so, but still tear down and exit 3
                _say(f"the lab failed:\n{traceback.format_exc()}")
                session.keep("the lab failed")
                return 3
    except (KeyboardInterrupt, Stopped) as exc:
        return exit_code(exc, _say)


def _run(
    session: LabSession,
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
    from sdnctl.lab.build import check_names_free
    from sdnctl.lab.probe import probe_matrix, start_servers
    from sdnctl.lab.report import format_matrices, format_summary, judge_probes

    spare = (p for p in free_ports(3) if p not in (controller_port, api_port))
    listen_port = controller_port or next(spare)
    api_port = api_port or next(spare)
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
        lab = session.lab(plan, (LOCALHOST, listen_port))
    except LabError as exc:
        _say(str(exc))
        return 3
    timings["build_s"] = round(time.monotonic() - started, 2)
    _say(f"built {_count(switches, 'switch')} and {_count(vms, 'VM')}"
         f" in {timings['build_s']:.1f} s")

    try:
        # IPv6 comes up as the VM boots: it solicits a router every second until the
        # controller has programmed its switch and answers.
        from sdnctl.lab.slaac import start_ipv6

        ipv6_vms = start_ipv6(lab.hosts, plan.hosts)
        servers = start_servers(lab.hosts, services)
        session.add("probe agents", servers.stop)
        log = session.tmp / "daemon.log"
        daemon = session.spawn("controller daemon",
                               daemon_command(policy_path, topology_path, listen, api), log)
        _say(f"controller pid {daemon.pid} on {listen}, API {api}, log {log}")
        started = time.monotonic()
        waiting = wait_until_programmed(api, plan, daemon, PROGRAM_TIMEOUT)
        programmed = time.monotonic()
        timings["programmed_s"] = round(programmed - started, 2)
        if waiting is None:
            _say(f"{_count(plugged(plan), 'VM')} bound and {_count(switches, 'switch')}"
                 f" programmed in {timings['programmed_s']:.1f} s")
        else:
            _say(f"not ready {waiting}")
            if not keep_going:
                session.keep("not programmed")
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
        addresses6 = _wait_ipv6(lab.hosts, plan, ipv6_vms, programmed, timings)
        started = time.monotonic()
        results = probe_matrix(lab.hosts, addresses, services, addresses6=addresses6)
        timings["probe_s"] = round(time.monotonic() - started, 2)
        _say(f"{len(results)} probes in {timings['probe_s']:.1f} s")
    except (LabError, NoLease) as exc:
        _say(str(exc))
        session.keep("the lab failed")
        return 3

    report = judge_probes(policy, vms, services, results, vms6=tuple(addresses6))
    print(format_matrices(report))
    print(format_summary(report))
    if report_path is not None:
        _write_report(report, report_path, policy_path, {
            "topology": str(topology_path),
            "policy": str(policy_path),
            "prefix": plan.prefix,
            "unplaced": list(plan.unplaced),
            "all_programmed": waiting is None,
            "timings": timings,
        })
    if report.failures:
        session.keep("probes disagreed with the policy")
        return 1
    return 0


def _wait_ipv6(hosts: dict[str, Any], plan: LabPlan, names: list[str], since: float,
               timings: dict[str, float]) -> dict[str, str]:
    """The IPv6 addresses of `names` (start_ipv6), once every one of them is ready."""
    from sdnctl.lab.slaac import wait_ipv6

    if not names:
        return {}
    wait_ipv6(hosts, plan.hosts, names)
    timings["ipv6_s"] = round(time.monotonic() - since, 2)
    by_slaac = sum(plan.host(vm).slaac for vm in names)
    _say(f"{_count(names, 'VM')} had their IPv6 addresses and routes from the router"
         f" advertisement {timings['ipv6_s']:.1f} s after the switches were programmed"
         f" ({by_slaac} by SLAAC, {len(names) - by_slaac} set by hand)")
    return {vm: str(plan.host(vm).ip6) for vm in names}


def _write_report(report: LabReport, path: str | Path, policy_path: Path,
                  meta: dict[str, Any]) -> None:
    """The JSON report and, next to it, the matrix as a PNG heat map."""
    from sdnctl.lab.report import report_json, write_report
    from sdnctl.render.matrix import write_lab_heatmap

    document = report_json(report, meta)
    write_report(path, document)
    heatmap = Path(path).with_suffix(".png")
    probes = document["probes"]
    write_lab_heatmap([p for p in probes if p["family"] == 4], heatmap,
                      f"measured reachability: {policy_path.name}")
    maps = str(heatmap)
    if report.vms6:
        heatmap6 = heatmap.with_name(heatmap.stem + "-ipv6.png")
        write_lab_heatmap([p for p in probes if p["family"] == 6], heatmap6,
                          f"measured IPv6 reachability: {policy_path.name}")
        maps += f" and {heatmap6}"
    _say(f"report written to {path}, heat maps to {maps}")
