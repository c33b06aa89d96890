"""The `sdnctl` command line: one entry point, one subcommand per job (DESIGN.md §4).

Exit codes: 0 success, 1 the check itself failed (e.g. a lab mismatch), 2 bad input,
3 the daemon does not answer (every command that talks to it: one message, one code).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sdnctl.yamlsrc import LoadError

if TYPE_CHECKING:
    from sdnctl.policy.model import Policy
    from sdnctl.verify.cuts import Cut

LOCAL_CONNTRACK = "local"  # --connections without a file: this machine's Open vSwitch

EXIT_BAD_INPUT = 2
EXIT_NO_DAEMON = 3
EXIT_CANNOT_RUN = 3  # as a lab that cannot start: something it needs is not installed
DEFAULT_API = "127.0.0.1:8680"


def _load(policy_path: str, topology_path: str):  # -> tuple[Policy, Topology]
    from sdnctl.policy.load import load_policy
    from sdnctl.topology.load import load_topology

    topology = load_topology(topology_path)
    return load_policy(policy_path, topology), topology


def cmd_check(args: argparse.Namespace) -> int:
    from sdnctl.policy.lint import lint_all
    from sdnctl.verify.nopath import pairs_without_path

    policy, topology = _load(args.policy, args.topology)
    # Errors, though the daemon would enforce the policy: where VMs really bind is
    # its business, but placed as written, these pairs would be BLOCKED.
    stranded = pairs_without_path(policy, topology)
    if stranded:
        for problem in stranded:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    lint = lint_all(policy)
    warnings = lint.warnings
    if args.live:
        from sdnctl.client.api import get_status
        from sdnctl.policy.sprawl import sprawl_warnings

        status = get_status(args.api, timeout=5.0, token=_api_token(args))
        warnings += sprawl_warnings(policy, status, args.stale_after)
    for w in warnings:
        print(f"{w} (warning)")
    n_rules = sum(len(t.rules) for t in policy.tenants.values())
    waived = f" ({len(lint.waived)} more waived)" if lint.waived else ""
    print(
        f"ok: {len(topology.switches)} switches, {len(topology.links)} links, "
        f"{len(policy.tenants)} tenants, {len(policy.vms)} VMs, {n_rules} rules, "
        f"{len(warnings)} warnings{waived}"
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
        rendered: dict[int, str] = {}  # a flow shared by many switches is rendered once
        for fs in flowsets:
            sys.stdout.write(render_flowset_ofctl(fs, rendered))
    return 0


def _parse_service_arg(text: str):  # -> Service
    from sdnctl.policy.model import parse_service

    try:
        return parse_service(text)
    except ValueError as exc:
        print(f"sdnctl explain: --service: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None


def _is_ipv4(text: str) -> bool:
    from ipaddress import AddressValueError, IPv4Address

    try:
        IPv4Address(text)
    except AddressValueError:
        return False
    return True


def cmd_explain(args: argparse.Namespace) -> int:
    from sdnctl.bindings import planned_bindings
    from sdnctl.compile.compiler import compile_network
    from sdnctl.verify.explain import (
        DhcpExplanation,
        Explanation,
        explain,
        explain_dhcp,
        explain_outside,
    )

    policy, topology = _load(args.policy, args.topology)
    wants_pair = args.dst is not None or args.service is not None
    if (args.dhcp and wants_pair) or (not args.dhcp and (args.dst is None or args.service is None)):
        print("sdnctl explain: give --to and --service, or --dhcp alone", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.dhcp:
        args.dst = args.src
    outside = [n for n in (args.src, args.dst) if n not in policy.vms and _is_ipv4(n)]
    for name in (args.src, args.dst):
        if name not in policy.vms and name not in outside:
            print(f"{args.policy}: unknown VM {name!r} (nor an IPv4 address outside)",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
    if len(outside) == 2 or (outside and (args.dhcp or args.ipv6)):
        print("sdnctl explain: one end may be an external IPv4 address, the other a VM "
              "(IPv4, not --dhcp)", file=sys.stderr)
        return EXIT_BAD_INPUT
    bindings = planned_bindings(policy, topology)
    flows = compile_network(policy, topology, bindings)
    result: Explanation | DhcpExplanation
    if args.dhcp:
        result = explain_dhcp(flows, policy, topology, bindings, args.src)
    elif outside:
        from sdnctl.verify.outside import router_learned

        bindings = router_learned(bindings, topology)  # as once the daemon has learned them
        flows = compile_network(policy, topology, bindings)
        result = explain_outside(flows, policy, topology, bindings, args.src, args.dst,
                                 _parse_service_arg(args.service))
    else:
        service = _parse_service_arg(args.service)
        result = explain(flows, policy, topology, bindings, args.src, args.dst, service,
                         6 if args.ipv6 else 4)
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
        from sdnctl.client.api import get_policy_text

        new = load_policy(args.old, topology)
        old = parse_policy(get_policy_text(args.api, token=_api_token(args)),
                           f"daemon at {args.api}", topology)
    else:
        old = load_policy(args.old, topology)
        new = load_policy(args.new, topology)
    result = plan_edit(old, new, topology)
    cuts = _connection_cuts(args.connections, new) if args.connections else None
    if args.json:
        out = result.to_json()
        if cuts is not None:
            out["cut"] = [c.to_json() for c in cuts]
        print(json.dumps(out, indent=2))
    else:
        print(result.to_text())
        if cuts is not None:
            print(_cuts_text(cuts))
    if args.render:
        from sdnctl.render.matrix import write_plan_heatmap

        write_plan_heatmap(result.added, result.removed, set(old.vms) | set(new.vms), args.render)
        print(f"wrote {args.render}", file=sys.stderr)
    return 0


def _connection_cuts(sources: list[str], new: Policy) -> list[Cut]:
    """Established connections (from conntrack dumps) that `new` would cut."""
    from sdnctl.verify.cuts import connection_cuts, parse_conntrack

    connections = []
    for source in sources:
        if source == LOCAL_CONNTRACK:
            from sdnctl.southbound.conntrack import ConntrackUnreadable, dump_conntrack

            try:
                text = dump_conntrack()
            except ConntrackUnreadable as exc:
                _fail(f"sdnctl plan --connections: {exc}")
        else:
            try:
                text = sys.stdin.read() if source == "-" else Path(source).read_text()
            except OSError as exc:
                _fail(f"sdnctl plan --connections: {source}: {exc.strerror}")
        connections += parse_conntrack(text)
    return connection_cuts(connections, new)


def _fail(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def _cuts_text(cuts: list[Cut]) -> str:
    if not cuts:
        return "no established connection would be cut"
    lines = [f"! {c.to_text()}" for c in cuts]
    lines.append(f"{len(cuts)} established connection(s) would be cut")
    return "\n".join(lines)


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


def cmd_schema(args: argparse.Namespace) -> int:
    from sdnctl.schema import SCHEMAS

    print(json.dumps(SCHEMAS[args.kind](), indent=2))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sdnctl.daemon import conn_limits, ipfix_export, run_daemon, tls_files

    return run_daemon(args.policy, args.topology, listen=args.listen, ovsdb=args.ovsdb,
                      api=args.api, api_token_file=args.api_token_file, tls=tls_files(args),
                      stats_interval_s=args.stats_interval or None, etcd=args.etcd,
                      etcd_prefix=args.etcd_prefix, replica_id=args.replica_id,
                      ipfix=ipfix_export(args), conn_limits=conn_limits(args),
                      connection_log=args.connection_log,
                      connection_log_mb=args.connection_log_mb)


def _duration(text: str) -> float:
    from sdnctl.policy.sprawl import parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 12h, 7d)")\
            from None


def _api_token(args: argparse.Namespace) -> str | None:
    """The token for talking to the daemon (--api-token-file, else $SDNCTL_API_TOKEN);
    SystemExit(2) with the reason when it cannot be read."""
    from sdnctl.apitoken import TokenError, read_token

    try:
        return read_token(args.api_token_file)
    except TokenError as exc:
        print(f"sdnctl {args.command}: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None


def _add_api_client_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--api", default=DEFAULT_API, metavar="HOST:PORT",
                    help=f"the daemon's status API (default {DEFAULT_API})")
    sp.add_argument("--api-token-file", metavar="FILE",
                    help="the API token, when the daemon has one (default: $SDNCTL_API_TOKEN)")


def cmd_status(args: argparse.Namespace) -> int:
    from sdnctl.client.api import get_status
    from sdnctl.render.status import render_status

    status = get_status(args.api, timeout=5.0, token=_api_token(args))
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    sys.stdout.write(render_status(status))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    if args.offline:
        from sdnctl.bindings import planned_bindings
        from sdnctl.compile.compiler import compile_network
        from sdnctl.verify.live import verify_offline
        from sdnctl.verify.outside import router_learned

        if not (args.policy and args.topology):
            print("sdnctl verify: --offline needs -p POLICY and -t TOPOLOGY", file=sys.stderr)
            return EXIT_BAD_INPUT
        policy, topology = _load(args.policy, args.topology)
        # Next hops as once the daemon has learned them by ARP.
        bindings = router_learned(planned_bindings(policy, topology), topology)
        report = verify_offline(policy, topology, bindings,
                                compile_network(policy, topology, bindings))
    else:
        from sdnctl.client.livefetch import fetch_enforced, fetch_live
        from sdnctl.verify.live import verify_network

        if args.policy or args.topology:
            print("sdnctl verify: -p/-t go with --offline (live, the daemon's files are used)",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        token = _api_token(args)
        enforced = fetch_enforced(args.api, token)
        live = fetch_live(args.api, token, enforced)
        report = verify_network(enforced.intent, live, enforced.policy, enforced.topology,
                                enforced.bindings, enforced.down_ports)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        sys.stdout.write(report.to_text())
    return 0 if report.ok else 1


def cmd_lab_run(args: argparse.Namespace) -> int:
    from sdnctl.lab.run import run_lab

    return run_lab(args.topology, args.policy, report_path=args.report, prefix=args.prefix,
                   controller_port=args.controller_port, api_port=args.api_port,
                   keep_going=args.keep_going)


def cmd_lab_experiment(args: argparse.Namespace) -> int:
    from sdnctl.lab.experiments.runner import run_experiments

    return run_experiments(args.names, args.topology, args.policy, runs=args.runs,
                           json_path=args.json, prefix=args.prefix)


def _add_lab_experiment_parser(labsub) -> None:  # labsub: the `lab` subparsers action
    from sdnctl.lab.experiments import DEFAULT_POLICY, DEFAULT_TOPOLOGY, NAMES

    sp = labsub.add_parser(
        "experiment", help="measure live changes on real OVS with continuous probes",
        description="Builds one lab (Mininet, userspace OVS, `sdnctl run`), runs the named "
        "experiments in it and prints their figures, measured with a probe every 10 ms: "
        + ", ".join(NAMES) + " (or all). faults injects one fault after another (daemon "
        "SIGKILL and SIGSTOP, OVSDB restart, link cut, bad policy edits, replica leader "
        "kill) under allowed and denied probes and reports each against its promised bound "
        "(docs/reliability.md). vswitchd-restart restarts the machine's "
        "ovs-vswitchd and runs only when no other process uses Open vSwitch. Exit 0 when "
        "every experiment ran, 1 if one failed, 2 on bad input, 3 if the lab could not run.")
    sp.add_argument("names", nargs="+", metavar="NAME", help="experiment(s), or all")
    sp.add_argument("-t", "--topology", default=str(DEFAULT_TOPOLOGY),
                    help="topology file (default: topologies/leaf-spine.topology.yaml)")
    sp.add_argument("-p", "--policy", default=str(DEFAULT_POLICY),
                    help="policy file (default: the experiments' own, for leaf-spine)")
    sp.add_argument("--runs", type=int, default=3,
                    help="repetitions per experiment; figures are medians (default 3)")
    sp.add_argument("--json", metavar="FILE", help="write every figure and run here")
    sp.add_argument("--prefix", help="3-character name prefix (default: a free one)")
    sp.set_defaults(func=cmd_lab_experiment)


# ---- vm: wire VM interfaces with pyroute2 + OVSDB (sdnctl/southbound/vmwire.py) -----------

VM_OVSDB = "unix:/var/run/openvswitch/db.sock"
VM_EPILOG = """\
plug creates the VM's interface and binds it in OVSDB: a tap (default, for a real
hypervisor) or, with --netns NS, a veth pair whose far end sits in namespace NS (created
if missing) with the VM's MAC, IP/prefix, default route via the segment gateway, IPv6
off and tx checksum offload off. The host end joins the bridge whose datapath id is the
switch's dpid (or --bridge) with external_ids:vm-id=NAME and attached-mac=MAC.
unplug removes the port, the interface and the namespace if plug created it and it is
now empty. migrate plugs the VM on the new switch, then moves vm-id from the old port to
the new one and deletes the old port in one OVSDB transaction; a namespace keeps its
address and default route throughout (the new interface is set up beside the old one).

Interface names: host end vm-NAME (NAME up to 10 letters, digits, _ or -; any other name
becomes its first 4 characters + '.' + 5 hex digits of its SHA-256), eth0 in the
namespace; the next migration uses vm-NAME.m and eth1, the one after goes back.

Running a command twice changes nothing the second time and says so.
Exit codes: 0 done (or nothing to do), 1 the system failed (OVSDB, netlink, needs root),
2 refused: unknown VM or switch, a switch that is not a hypervisor, no bridge with the
switch's dpid, or a conflict with how the VM is plugged now."""


def _wire_outcome(command: str, action) -> int:  # action: () -> Outcome
    """Run a `vm` or `mirror` command: a refusal exits 2, a failure of the system 1."""
    from sdnctl.southbound.vmwire import Refused, WireError

    try:
        outcome = action()
    except Refused as exc:
        print(f"sdnctl {command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except WireError as exc:
        print(f"sdnctl {command}: {exc}", file=sys.stderr)
        return 1
    print(outcome.text())
    return 0


def _vm_outcome(args: argparse.Namespace, action) -> int:  # action: () -> Outcome
    return _wire_outcome(f"vm {args.vm_command}", action)


def _mirror_outcome(args: argparse.Namespace, action) -> int:  # action: () -> Outcome
    return _wire_outcome(f"mirror {args.mirror_command}", action)


def _vm_options(args: argparse.Namespace):  # -> PlugOptions
    from sdnctl.southbound.vmwire import Kind, PlugOptions

    netns = getattr(args, "netns", None)
    return PlugOptions(kind=Kind.NETNS if netns else Kind.TAP, netns=netns, mtu=args.mtu,
                       bridge=args.bridge, ovsdb=args.ovsdb)


def cmd_vm_plug(args: argparse.Namespace) -> int:
    from sdnctl.southbound.vmwire import plug_vm, resolve_target

    policy, topology = _load(args.policy, args.topology)
    return _vm_outcome(args, lambda: plug_vm(
        resolve_target(policy, topology, args.vm, args.host), _vm_options(args)))


def cmd_vm_unplug(args: argparse.Namespace) -> int:
    from sdnctl.southbound.vmwire import resolve_vm, unplug_vm

    policy, _ = _load(args.policy, args.topology)

    def action():  # -> Outcome
        resolve_vm(policy, args.vm)
        return unplug_vm(args.vm, args.ovsdb)

    return _vm_outcome(args, action)


def cmd_vm_migrate(args: argparse.Namespace) -> int:
    from sdnctl.southbound.vmwire import migrate_vm, resolve_target

    policy, topology = _load(args.policy, args.topology)
    return _vm_outcome(args, lambda: migrate_vm(
        resolve_target(policy, topology, args.vm, args.to), _vm_options(args)))


def _netns_name(text: str) -> str:
    if not text or text in (".", "..") or "/" in text or len(text.encode()) > 255:
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable namespace name")
    return text


def _mtu(text: str) -> int:
    if not text.isdigit() or not 68 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: MTU must be a number in 68..65535")
    return int(text)


def _add_vm_parser(sub) -> None:  # sub: the subparsers action of the top-level parser
    vm = sub.add_parser(
        "vm", help="plug, unplug or migrate a VM's interface (pyroute2 + OVSDB)",
        description="Wire VM interfaces into the OVS bridges of hypervisor switches\n"
        "and bind them to VM identities in OVSDB (external_ids:vm-id).",
        epilog=VM_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    vmsub = vm.add_subparsers(dest="vm_command", required=True, metavar="VMCOMMAND")

    def common(sp: argparse.ArgumentParser, mtu: str | None) -> None:
        sp.add_argument("vm", metavar="NAME", help="a VM of the policy")
        sp.add_argument("-p", "--policy", required=True, help="policy file (YAML, version 1)")
        sp.add_argument("-t", "--topology", required=True,
                        help="topology file (YAML, version 1)")
        if mtu is not None:
            sp.add_argument("--bridge", help="the OVS bridge to use (default: the one whose "
                            "datapath id is the switch's dpid)")
            sp.add_argument("--mtu", type=_mtu, help=mtu)
        sp.add_argument("--ovsdb", default=VM_OVSDB, help=f"OVSDB server (default {VM_OVSDB})")

    sp = vmsub.add_parser(
        "plug", help="create the VM's interface and bind it on a hypervisor",
        epilog=VM_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(sp, "interface MTU (default 1500)")
    sp.add_argument("--host", metavar="SWITCH",
                    help="hypervisor switch of the topology (default: the VM's host)")
    kind = sp.add_mutually_exclusive_group()
    kind.add_argument("--netns", metavar="NS", type=_netns_name,
                      help="a veth pair into network namespace NS (labs)")
    kind.add_argument("--tap", action="store_true",
                      help="a tap device for a hypervisor to attach the guest to (default)")
    sp.set_defaults(func=cmd_vm_plug)

    sp = vmsub.add_parser(
        "unplug", help="remove the VM's port, interface and (if sdnctl made it) namespace",
        epilog=VM_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(sp, None)
    sp.set_defaults(func=cmd_vm_unplug)

    sp = vmsub.add_parser(
        "migrate", help="move the VM to another hypervisor (plug there, then unplug here)",
        epilog=VM_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(sp, "interface MTU (default: the current interface's)")
    sp.add_argument("--to", required=True, metavar="SWITCH", help="hypervisor switch to move to")
    sp.set_defaults(func=cmd_vm_migrate)


# ---- mirror: OVSDB Mirror records on the VM's bridge (sdnctl/southbound/mirror.py) -------

MIRROR_EPILOG = """\
start copies the VM's frames to a capture end on the VM's own bridge, through an OVSDB
Mirror record: --to PORT, an existing OVS port on that bridge (an internal port for
tcpdump on the hypervisor, or the port of a monitoring VM of the same tenant), or
--netns NS, a veth into namespace NS (created if missing) whose end there is
cap-NAME: run `ip netns exec NS tcpdump -ni cap-NAME`. Directions are the VM's: out
is what it sends, in what it receives (after the policy allowed it), both (default).

Open vSwitch reserves the capture port for the mirror: it gets the selected frames and
nothing else, and what it sends is discarded. Refused (exit 2): a capture end another
tenant could read (a VM port of another tenant or of a VM the policy does not name, a
namespace holding such a VM), a fabric link, a patch or tunnel port, a port on another
bridge. Run it on the hypervisor the VM is plugged into: mirroring a VM on another
hypervisor than the capture point is not provided. The mirror follows the port, not
the VM: after a migration, start it again where the VM now is.

Mirrors live in OVSDB (Mirror rows sdnctl-NAME): they survive a restart of the daemon
or of Open vSwitch, `sdnctl status` lists them, stop removes them and whatever start
made (the capture veth, and the namespace if start created it and it is empty).
Exit codes: 0 done (or nothing to do), 1 the system failed (OVSDB, netlink, needs
root), 2 refused."""


def cmd_mirror_start(args: argparse.Namespace) -> int:
    from sdnctl.southbound.mirror import Capture, Direction, start_mirror

    policy, topology = _load(args.policy, args.topology)
    capture = Capture(port=args.to, netns=args.netns)
    return _mirror_outcome(args, lambda: start_mirror(
        policy, topology, args.vm, capture, Direction(args.direction), args.ovsdb))


def cmd_mirror_stop(args: argparse.Namespace) -> int:
    from sdnctl.southbound.mirror import stop_mirrors

    return _mirror_outcome(args, lambda: stop_mirrors(args.vm, args.ovsdb))


def cmd_mirror_list(args: argparse.Namespace) -> int:
    from sdnctl.render.status import mirrors_table
    from sdnctl.southbound.mirror import list_mirrors
    from sdnctl.southbound.vmwire import WireError

    try:
        mirrors = [m.as_json() for m in list_mirrors(args.ovsdb)]
    except WireError as exc:
        print(f"sdnctl mirror list: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(mirrors, indent=2))
    else:
        print(mirrors_table(mirrors))
    return 0


def _add_mirror_parser(sub) -> None:  # sub: the subparsers action of the top-level parser
    mirror = sub.add_parser(
        "mirror", help="copy a VM's frames to a capture port or namespace (OVSDB Mirror)",
        description="Mirror a VM's traffic to a capture end on its own bridge.",
        epilog=MIRROR_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    msub = mirror.add_subparsers(dest="mirror_command", required=True, metavar="MIRRORCOMMAND")

    def ovsdb(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--ovsdb", default=VM_OVSDB, help=f"OVSDB server (default {VM_OVSDB})")

    sp = msub.add_parser("start", help="mirror a VM's frames to --to PORT or --netns NS",
                         epilog=MIRROR_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.add_argument("vm", metavar="VM", help="a VM of the policy, plugged on this hypervisor")
    where = sp.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", metavar="PORT", help="an existing OVS port on the VM's bridge")
    where.add_argument("--netns", metavar="NS", type=_netns_name,
                       help="a veth into namespace NS (created if missing), cap-VM there")
    sp.add_argument("--direction", choices=["in", "out", "both"], default="both",
                    help="the VM's frames: out (sent), in (received) or both (default)")
    sp.add_argument("-p", "--policy", required=True, help="policy file (YAML, version 1)")
    sp.add_argument("-t", "--topology", required=True, help="topology file (YAML, version 1)")
    ovsdb(sp)
    sp.set_defaults(func=cmd_mirror_start)

    sp = msub.add_parser("stop", help="remove a VM's mirror (or every sdnctl mirror here)",
                         epilog=MIRROR_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.add_argument("vm", metavar="VM", nargs="?",
                    help="the mirrored VM (default: every mirror sdnctl made on this OVSDB)")
    ovsdb(sp)
    sp.set_defaults(func=cmd_mirror_stop)

    sp = msub.add_parser("list", help="the mirrors on this OVSDB, with packets mirrored")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    ovsdb(sp)
    sp.set_defaults(func=cmd_mirror_list)


def build_parser(full: bool = True) -> argparse.ArgumentParser:
    """The parser; `full=False` leaves out `run`'s own options, whose definitions
    import the daemon (a third of a second that other commands need not pay)."""
    p = argparse.ArgumentParser(
        prog="sdnctl",
        description="VLAN segmentation and VM micro-segmentation for Open vSwitch.",
        epilog="Errors in input files are printed as file:line: message, exit code 2.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def files(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-p", "--policy", required=True, help="policy file (YAML, version 1)")
        sp.add_argument("-t", "--topology", required=True, help="topology file (YAML, version 1)")

    sp = sub.add_parser("check", help="validate and lint a policy against a topology",
                        description="Validate and lint. Errors (exit 2) include VM pairs "
                        "the policy allows that no path connects, placed as written. Each "
                        "warning ends with a code; `waive: [CODE]` on the rule, group, VM or "
                        "tenant it is about silences it (docs/policy.md). With --live, also "
                        "ask the running "
                        "daemon about sprawl: VMs of the policy not bound for longer than "
                        "--stale-after, and hypervisor ports bound to no VM.")
    files(sp)
    sp.add_argument("--live", action="store_true",
                    help="add the sprawl warnings from the running daemon (--api)")
    sp.add_argument("--stale-after", type=_duration, default="7d", metavar="DURATION",
                    help="a VM unbound for longer than this is reported (90s, 30m, 12h, "
                    "7d; default 7d)")
    _add_api_client_arguments(sp)
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("compile", help="print the flows each switch would get")
    files(sp)
    sp.add_argument("--switch", help="only this switch")
    sp.add_argument("--format", choices=["ofctl", "json"], default="ofctl",
                    help="ofctl: lines for `ovs-ofctl -O OpenFlow13 add-flows` (default)")
    sp.set_defaults(func=cmd_compile)

    sp = sub.add_parser("explain", help="walk the compiled pipeline for one connection "
                                        "(or a VM's DHCP request)")
    files(sp)
    sp.add_argument("--from", dest="src", required=True, metavar="VM|ADDRESS",
                    help="a VM, or an IPv4 address outside (a connection in through a "
                         "floating IP)")
    sp.add_argument("--to", dest="dst", metavar="VM|ADDRESS",
                    help="a VM, or an IPv4 address outside (a connection out through a "
                         "gateway)")
    sp.add_argument("--service", help="tcp/80, udp/53, icmp, ...")
    sp.add_argument("--dhcp", action="store_true",
                    help="instead of --to/--service: is the VM's DHCP DISCOVER answered, "
                         "and with what (address, router, DNS, MTU, lease)")
    sp.add_argument("--ipv6", action="store_true",
                    help="the connection in IPv6, between the VMs' ip6 addresses (neighbour "
                         "discovery answered as the controller does)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_explain)

    sp = sub.add_parser(
        "plan", help="reachability a policy edit adds and removes",
        description="Compare what OLD and NEW let every VM pair open, over every port "
        "of every protocol, and print the differences as ranges (tcp/8101-9000), per "
        "class of VMs (SEGMENT[GROUPS]). Pairs the fabric cannot connect are left out. "
        "With only one file, it is NEW and OLD is the policy the running daemon enforces.")
    sp.add_argument("-t", "--topology", required=True)
    sp.add_argument("old", metavar="OLD")
    sp.add_argument("new", metavar="NEW", nargs="?")
    sp.add_argument("--json", action="store_true")
    _add_api_client_arguments(sp)
    sp.add_argument("--render", metavar="FILE.png|svg",
                    help="also draw what the edit adds (green) and removes (red)")
    sp.add_argument(
        "--connections", action="append", nargs="?", const=LOCAL_CONNTRACK, metavar="DUMP",
        help="also list the established connections NEW would cut: read this machine's "
        "Open vSwitch conntrack, or DUMP, the output of `ovs-appctl dpctl/dump-conntrack` "
        "on a hypervisor (- for stdin; repeat for several)")
    sp.set_defaults(func=cmd_plan)

    sp = sub.add_parser("graph", help="draw the topology with its VMs, segments and tenants")
    files(sp)
    sp.add_argument("-o", "--output", required=True, help="FILE.png, FILE.svg or FILE.dot")
    sp.add_argument("--format", choices=["png", "svg", "dot"],
                    help="default: from the output file's suffix")
    sp.set_defaults(func=cmd_graph)

    sp = sub.add_parser(
        "schema", help="print the JSON Schema of the policy or topology file format",
        description="Print the JSON Schema (draft 2020-12) of a policy or topology file. "
        "Editors that read schemas complete keys and flag unknown keys, wrong types and "
        "out-of-range values as you type: save the output and name it on a file's first "
        "line, `# yaml-language-server: $schema=policy.schema.json`. Checks that involve "
        "more than one value (a VLAN used twice, an IP outside its segment) are made by "
        "`sdnctl check` only. The same schemas are in docs/schema/.")
    sp.add_argument("kind", choices=["policy", "topology"], help="which file format")
    sp.set_defaults(func=cmd_schema)

    sp = sub.add_parser(
        "run", help="the controller daemon",
        description="Programs every switch of the topology from the policy and follows "
        "edits, OVSDB bindings and link changes. Exit 2 on bad input (including a status "
        "API on a non-loopback address without a token), 1 if an address is unusable.")
    files(sp)
    if full:
        from sdnctl.daemon import add_run_arguments

        add_run_arguments(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser(
        "status", help="live state from the running daemon",
        description="Switches, VM bindings, unknown ports, the enforced policy (and the "
        "last refused edit), counters and recent events, as tables. Exit 3 if the daemon "
        "does not answer, 1 if it refuses (e.g. a wrong token).")
    _add_api_client_arguments(sp)
    sp.add_argument("--json", action="store_true", help="print the /status document")
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser(
        "verify", help="check the installed flows and the VM pairs' verdicts against intent",
        description="Through the daemon: read every connected switch's flows, groups and "
        "meters and report each difference from intent (missing, extra, changed), then "
        "simulate the live tables for one representative pair per pair of VM classes "
        "and report every pair whose verdict differs from the policy. With --offline, "
        "only the second part, over the flows compiled from -p/-t. Exit 0 only when the "
        "network equals intent; 1 when it differs; 2 on bad input; 3 if the daemon does "
        "not answer.")
    _add_api_client_arguments(sp)
    sp.add_argument("--offline", action="store_true",
                    help="simulate compiled flows instead of reading the switches")
    sp.add_argument("-p", "--policy", help="policy file (with --offline)")
    sp.add_argument("-t", "--topology", help="topology file (with --offline)")
    sp.add_argument("--json", action="store_true", help="the full report as JSON")
    sp.set_defaults(func=cmd_verify)

    _add_vm_parser(sub)
    _add_mirror_parser(sub)

    lab = sub.add_parser("lab", help="Mininet labs on real Open vSwitch")
    labsub = lab.add_subparsers(dest="lab_command", required=True, metavar="LABCOMMAND")
    sp = labsub.add_parser(
        "run", help="build the topology, run the controller, probe every VM pair",
        description="Builds the topology in Mininet (userspace OVS), starts `sdnctl run`, "
        "probes every ordered VM pair x service (in IPv6 too between VMs that have an IPv6 "
        "address) and compares with the policy. "
        "Exit 0 only if the measured matrix equals the promised one; 1 on a mismatch, "
        "2 on bad input, 3 if the lab could not run.")
    files(sp)
    sp.add_argument("--report", help="write the JSON report here (and its heat maps next to "
                    "it: REPORT.png, REPORT-ipv6.png)")
    sp.add_argument("--prefix", default="",
                    help="prefix for bridge and host names (to run labs side by side)")
    sp.add_argument("--controller-port", type=int, help="OpenFlow port (default: a free one)")
    sp.add_argument("--api-port", type=int, help="status API port (default: a free one)")
    sp.add_argument("--keep-going", action="store_true",
                    help="probe even if not every switch is programmed in time")
    sp.set_defaults(func=cmd_lab_run)
    _add_lab_experiment_parser(labsub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    full = not words or "run" in words or "-h" in words or "--help" in words
    args = build_parser(full).parse_args(words)
    from sdnctl.client.api import ApiError

    try:
        return int(args.func(args))
    except ApiError as exc:
        return _daemon_failed(args, exc)
    except LoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"sdnctl: {exc.filename}: no such file", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return 0
    except ModuleNotFoundError as exc:  # an optional extra (lab, render) not installed
        from sdnctl.tools import missing_extra

        why = missing_extra(exc)
        if why is None:
            raise
        print(f"sdnctl {args.command}: {why}", file=sys.stderr)
        return EXIT_CANNOT_RUN


def _daemon_failed(args: argparse.Namespace, exc: Exception) -> int:
    """Every command that talks to the daemon fails the same way: no answer (refused,
    unreachable, timed out) is exit 3; an answer that is an error (a wrong token,
    a refused request) is exit 1. The message names the command and the address."""
    code = getattr(exc, "code", None)
    if code is None:
        print(f"sdnctl {args.command}: the daemon at {args.api} does not answer "
              f"({_reason(exc)})", file=sys.stderr)
        return EXIT_NO_DAEMON
    print(f"sdnctl {args.command}: the daemon at {args.api} refused: {exc}", file=sys.stderr)
    return 1


def _reason(exc: Exception) -> str:
    cause = exc.__cause__
    reason = getattr(cause, "reason", cause)  # URLError wraps the socket's error
    return str(reason or exc)


if __name__ == "__main__":
    sys.exit(main())


