"""The `sdnctl` command line: one entry point, one subcommand per job (DESIGN.md §4).

Exit codes: 0 success, 1 the check itself failed (e.g. a lab mismatch), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sdnctl.yamlsrc import LoadError

EXIT_BAD_INPUT = 2
DEFAULT_API = "127.0.0.1:8680"


def _load(policy_path: str, topology_path: str):  # -> tuple[Policy, Topology]
    from sdnctl.policy.load import load_policy
    from sdnctl.topology.load import load_topology

    topology = load_topology(topology_path)
    return load_policy(policy_path, topology), topology


def cmd_check(args: argparse.Namespace) -> int:
    from sdnctl.policy.lint import lint_policy

    policy, topology = _load(args.policy, args.topology)
    warnings = lint_policy(policy)
    for w in warnings:
        print(f"{w} (warning)")
    n_rules = sum(len(t.rules) for t in policy.tenants.values())
    print(
        f"ok: {len(topology.switches)} switches, {len(topology.links)} links, "
        f"{len(policy.tenants)} tenants, {len(policy.vms)} VMs, {n_rules} rules, "
        f"{len(warnings)} warnings"
    )
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from sdnctl.bindings import planned_bindings
    from sdnctl.compile.compiler import compile_network, compile_switch
    from sdnctl.flows import flowset_to_json, render_flowset_ofctl

    policy, topology = _load(args.policy, args.topology)
    bindings = planned_bindings(policy, topology)
    if args.switch:
        if args.switch not in topology.switches:
            known = ", ".join(sorted(topology.switches))
            print(f"{args.topology}: unknown switch {args.switch!r} (known: {known})",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        flowsets = [compile_switch(policy, topology, bindings, args.switch)]
    else:
        flowsets = list(compile_network(policy, topology, bindings).values())
    if args.format == "json":
        print(json.dumps([flowset_to_json(fs) for fs in flowsets], indent=2))
    else:
        for fs in flowsets:
            sys.stdout.write(render_flowset_ofctl(fs))
    return 0


def _parse_service_arg(text: str):  # -> Service
    from sdnctl.policy.model import parse_service

    try:
        return parse_service(text)
    except ValueError as exc:
        raise SystemExit(f"sdnctl: --service: {exc}") from None


def cmd_explain(args: argparse.Namespace) -> int:
    from sdnctl.bindings import planned_bindings
    from sdnctl.compile.compiler import compile_network
    from sdnctl.verify.explain import explain

    policy, topology = _load(args.policy, args.topology)
    for name in (args.src, args.dst):
        if name not in policy.vms:
            print(f"{args.policy}: unknown VM {name!r}", file=sys.stderr)
            return EXIT_BAD_INPUT
    service = _parse_service_arg(args.service)
    bindings = planned_bindings(policy, topology)
    flows = compile_network(policy, topology, bindings)
    result = explain(flows, policy, topology, bindings, args.src, args.dst, service)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.to_text())
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from sdnctl.policy.load import load_policy, parse_policy
    from sdnctl.topology.load import load_topology
    from sdnctl.verify.plan import plan_edit

    topology = load_topology(args.topology)
    if args.new is None:  # one file given: it is NEW, OLD is what the daemon enforces
        from sdnctl.southbound.api_client import get_policy_text

        new = load_policy(args.old, topology)
        old = parse_policy(get_policy_text(args.api), f"daemon at {args.api}", topology)
    else:
        old = load_policy(args.old, topology)
        new = load_policy(args.new, topology)
    result = plan_edit(old, new, topology)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.to_text())
    if args.render:
        from sdnctl.render.matrix import write_plan_heatmap

        write_plan_heatmap(result.added, result.removed, set(old.vms) | set(new.vms), args.render)
        print(f"wrote {args.render}", file=sys.stderr)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    import shutil
    import subprocess

    from sdnctl.bindings import planned_bindings
    from sdnctl.render.topology_dot import topology_dot

    policy, topology = _load(args.policy, args.topology)
    dot = topology_dot(topology, policy, planned_bindings(policy, topology))
    fmt = args.format or Path(args.output).suffix.lstrip(".") or "png"
    if fmt == "dot":
        Path(args.output).write_text(dot)
    elif fmt in ("png", "svg"):
        if shutil.which("dot") is None:
            print("sdnctl: Graphviz `dot` not found (apt-get install graphviz), or use "
                  "--format dot", file=sys.stderr)
            return 1
        subprocess.run(["dot", f"-T{fmt}", "-o", args.output], input=dot, text=True, check=True)
    else:
        print(f"sdnctl: unknown format {fmt!r} (png, svg or dot)", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {args.output}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sdnctl.daemon import run_daemon

    return run_daemon(args.policy, args.topology, listen=args.listen, ovsdb=args.ovsdb,
                      api=args.api)


def cmd_status(args: argparse.Namespace) -> int:
    from sdnctl.southbound.api_client import get_status

    status = get_status(args.api)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    pol = status.get("policy", {})
    print(f"policy {pol.get('file')} sha256 {str(pol.get('sha256'))[:12]}")
    for name, sw in sorted(status.get("switches", {}).items()):
        state = "programmed" if sw.get("programmed") else (
            "connected" if sw.get("connected") else "down")
        print(f"  {name:<10} dpid {sw.get('dpid')!s:<6} {state:<11} {sw.get('flows')} flows")
    for vm, where in sorted(status.get("bindings", {}).items()):
        print(f"  vm {vm:<10} at {where}")
    return 0


def cmd_lab_run(args: argparse.Namespace) -> int:
    from sdnctl.lab.run import run_lab

    return run_lab(args.topology, args.policy, report_path=args.report, prefix=args.prefix,
                   controller_port=args.controller_port, api_port=args.api_port,
                   keep_going=args.keep_going)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sdnctl",
        description="VLAN segmentation and VM micro-segmentation for Open vSwitch.",
        epilog="Errors in input files are printed as file:line: message, exit code 2.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def files(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-p", "--policy", required=True, help="policy file (YAML, version 1)")
        sp.add_argument("-t", "--topology", required=True, help="topology file (YAML, version 1)")

    sp = sub.add_parser("check", help="validate and lint a policy against a topology")
    files(sp)
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("compile", help="print the flows each switch would get")
    files(sp)
    sp.add_argument("--switch", help="only this switch")
    sp.add_argument("--format", choices=["ofctl", "json"], default="ofctl",
                    help="ofctl: lines for `ovs-ofctl -O OpenFlow13 add-flows` (default)")
    sp.set_defaults(func=cmd_compile)

    sp = sub.add_parser("explain", help="walk the compiled pipeline for one connection")
    files(sp)
    sp.add_argument("--from", dest="src", required=True, metavar="VM")
    sp.add_argument("--to", dest="dst", required=True, metavar="VM")
    sp.add_argument("--service", required=True, help="tcp/80, udp/53, icmp, ...")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_explain)

    sp = sub.add_parser(
        "plan", help="reachability a policy edit adds and removes",
        description="Compare OLD and NEW policies by simulating both. With only one "
        "file, it is NEW and OLD is the policy the running daemon enforces.")
    sp.add_argument("-t", "--topology", required=True)
    sp.add_argument("old", metavar="OLD")
    sp.add_argument("new", metavar="NEW", nargs="?")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--api", default=DEFAULT_API, help=f"daemon status API (default {DEFAULT_API})")
    sp.add_argument("--render", metavar="FILE.png|svg",
                    help="also draw what the edit adds (green) and removes (red)")
    sp.set_defaults(func=cmd_plan)

    sp = sub.add_parser("graph", help="draw the topology with its VMs, segments and tenants")
    files(sp)
    sp.add_argument("-o", "--output", required=True, help="FILE.png, FILE.svg or FILE.dot")
    sp.add_argument("--format", choices=["png", "svg", "dot"],
                    help="default: from the output file's suffix")
    sp.set_defaults(func=cmd_graph)

    sp = sub.add_parser("run", help="the controller daemon")
    files(sp)
    sp.add_argument("--listen", default="0.0.0.0:6653", help="OpenFlow listener HOST:PORT")
    sp.add_argument("--ovsdb", default="unix:/var/run/openvswitch/db.sock",
                    help="OVSDB to watch for VM bindings")
    sp.add_argument("--api", default=DEFAULT_API, help="status API HOST:PORT")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("status", help="live state from the running daemon")
    sp.add_argument("--api", default=DEFAULT_API)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_status)

    lab = sub.add_parser("lab", help="Mininet labs on real Open vSwitch")
    labsub = lab.add_subparsers(dest="lab_command", required=True, metavar="LABCOMMAND")
    sp = labsub.add_parser(
        "run", help="build the topology, run the controller, probe every VM pair",
        description="Builds the topology in Mininet (userspace OVS), starts `sdnctl run`, "
        "probes every ordered VM pair x service and compares with the policy. "
        "Exit 0 only if the measured matrix equals the promised one; 1 on a mismatch, "
        "2 on bad input, 3 if the lab could not run.")
    files(sp)
    sp.add_argument("--report", help="write the JSON report here")
    sp.add_argument("--prefix", default="",
                    help="prefix for bridge and host names (to run labs side by side)")
    sp.add_argument("--controller-port", type=int, help="OpenFlow port (default: a free one)")
    sp.add_argument("--api-port", type=int, help="status API port (default: a free one)")
    sp.add_argument("--keep-going", action="store_true",
                    help="probe even if not every switch is programmed in time")
    sp.set_defaults(func=cmd_lab_run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"sdnctl: {exc.filename}: no such file", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())


