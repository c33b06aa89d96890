"""OVN 23.03 as a peer: flows on the hypervisor for one N x M x K rule, and the time
for an ACL change to land.

    .venv/bin/python -m benchmarks.peers.ovn_bench [--json FILE]

One chassis (this machine's Open vSwitch): northd and the NB/SB databases from
Debian's `ovn-central`, `ovn-controller` from `ovn-host`, br-int with
datapath_type=netdev. The growth policy of benchmarks/flow_growth.py becomes a
logical switch with one port per VM (a namespace on a veth bound by
`external_ids:iface-id`), port groups `src` and `dst` and a stateful default-deny:
`from-lport` drop for all IP, `allow-related` for src -> $dst_ip4 on the K ports.
Figures per size: flows on br-int (dump-aggregate), and for a one-rule edit
(a new ACL: src -> dst icmp) the time `ovn-nbctl --wait=hv` takes to return
(OVN's own "landed on every hypervisor") and the time until a ping src0 -> dst0
is answered.

Everything it starts or creates is stopped and removed at the end (ovn-controller
and northd through ovn-ctl, br-int, namespaces, veths, the OVN databases it
created, and the Open_vSwitch external_ids it set, restored to what they were).
It refuses to run when OVN is already running or br-int exists (someone else's).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sdnctl.bench import netgen  # noqa: E402
from sdnctl.bench.report import print_table, write_json  # noqa: E402

OVN_CTL = "/usr/share/ovn/scripts/ovn-ctl"
DB_FILES = [Path("/var/lib/ovn/ovnnb_db.db"), Path("/var/lib/ovn/ovnsb_db.db"),
            Path("/etc/ovn/ovnnb_db.db"), Path("/etc/ovn/ovnsb_db.db")]
EXT_KEYS = ("ovn-remote", "ovn-encap-type", "ovn-encap-ip", "system-id",
            "ovn-bridge-datapath-type")
SIZES = ((10, 10, 1), (10, 10, 10), (100, 10, 1))
NS = "sbovn"  # namespace and veth prefix


def sh(*cmd: str, check: bool = True) -> str:
    done = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def why_not() -> str | None:
    if not Path(OVN_CTL).exists():
        return "OVN is not installed (apt-get install ovn-central ovn-host)"
    if sh("pgrep", "-x", "ovn-controller", check=False) or sh("pgrep", "-x", "ovn-northd",
                                                            check=False):
        return "OVN is already running on this machine (someone else's): not touched"
    if "br-int" in sh("ovs-vsctl", "list-br").split():
        return "a bridge br-int already exists (someone else's): not touched"
    return None


def _ext_ids() -> dict[str, str]:
    out = sh("ovs-vsctl", "--format=json", "get", "Open_vSwitch", ".", "external_ids")
    return {k: v.strip('"') for k, v in re.findall(r'"?([\w-]+)"?="?([^",}]*)"?', out)}


@contextlib.contextmanager
def ovn_running() -> Iterator[None]:
    """northd + databases + br-int (netdev) + ovn-controller; all undone afterwards."""
    saved = _ext_ids()
    existed = {p for p in DB_FILES if p.exists()}
    try:
        sh("ovs-vsctl", "add-br", "br-int", "--", "set", "Bridge", "br-int",
           "datapath_type=netdev", "fail_mode=secure", "other-config:disable-in-band=true")
        sh("ovs-vsctl", "set", "Open_vSwitch", ".",
           "external_ids:ovn-remote=unix:/var/run/ovn/ovnsb_db.sock",
           "external_ids:ovn-encap-type=geneve", "external_ids:ovn-encap-ip=127.0.0.1",
           "external_ids:system-id=sdnctl-bench", "external_ids:ovn-bridge-datapath-type=netdev")
        sh(OVN_CTL, "start_northd")
        sh(OVN_CTL, "start_controller")
        yield
    finally:
        for what in ("stop_controller", "stop_northd"):
            sh(OVN_CTL, what, check=False)
        sh("ovs-vsctl", "--if-exists", "del-br", "br-int", check=False)
        for key in EXT_KEYS:
            if key in saved:
                sh("ovs-vsctl", "set", "Open_vSwitch", ".", f'external_ids:{key}="{saved[key]}"',
                   check=False)
            else:
                sh("ovs-vsctl", "remove", "Open_vSwitch", ".", "external_ids", key, check=False)
        for p in DB_FILES:
            if p.exists() and p not in existed:
                p.unlink()


@contextlib.contextmanager
def vm_ports(vms: list[tuple[str, str, str]]) -> Iterator[None]:
    """(name, mac, ip) -> a namespace NS<i> with eth0, its veth peer on br-int bound
    to the logical port `name`."""
    made: list[int] = []
    try:
        for i, (name, mac, ip) in enumerate(vms):
            ns, host_if = f"{NS}{i}", f"{NS}{i}p"
            sh("ip", "netns", "add", ns)
            made.append(i)
            sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "address", mac)
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/16", "dev", "eth0")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            sh("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off")
            sh("ip", "link", "set", host_if, "up")
            sh("ovs-vsctl", "add-port", "br-int", host_if, "--", "set", "Interface", host_if,
               f"external_ids:iface-id={name}")
        yield
    finally:
        for i in made:
            sh("ovs-vsctl", "--if-exists", "del-port", "br-int", f"{NS}{i}p", check=False)
            sh("ip", "link", "del", f"{NS}{i}p", check=False)
            sh("ip", "netns", "del", f"{NS}{i}", check=False)


def flow_count() -> int:
    out = sh("ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate",
             "unix:/var/run/openvswitch/br-int.mgmt")
    found = re.search(r"flow_count=(\d+)", out)
    return int(found.group(1)) if found else -1


def nbctl_wait(*args: str) -> float:
    """Run `ovn-nbctl --wait=hv ARGS`; seconds until every chassis has applied it."""
    t0 = time.monotonic()
    sh("ovn-nbctl", "--wait=hv", "--timeout=60", *args)
    return time.monotonic() - t0


def ping_ok(ns: str, ip: str) -> bool:
    out = sh("ip", "netns", "exec", ns, "ping", "-n", "-c", "1", "-W", "0.05", ip, check=False)
    return " 0% packet loss" in out


def measure(n: int, m: int, k: int) -> dict[str, object]:
    doc = netgen.growth_policy(n, m, k)
    vms = [(name, v["mac"], v["ip"]) for name, v in doc["vms"].items()]
    srcs = [v[0] for v in vms if v[0].startswith("src")]
    dsts = [v[0] for v in vms if v[0].startswith("dst")]
    ports = ",".join(f"{p}" for p in range(2000, 2000 + 2 * k, 2))
    sh("ovn-nbctl", "--if-exists", "ls-del", "ls1")
    for pg in ("src", "dst", "all"):
        sh("ovn-nbctl", "pg-del", pg, check=False)  # absent the first time
    cmds = ["ls-add", "ls1"]
    for name, mac, ip in vms:
        cmds += ["--", "lsp-add", "ls1", name, "--", "lsp-set-addresses", name, f"{mac} {ip}"]
    cmds += ["--", "pg-add", "src", *srcs, "--", "pg-add", "dst", *dsts,
             "--", "pg-add", "all", *srcs, *dsts,
             "--", "acl-add", "all", "from-lport", "1001", "inport == @all && ip4", "drop",
             "--", "acl-add", "src", "from-lport", "1002",
             f"inport == @src && ip4.dst == $dst_ip4 && tcp.dst == {{{ports}}}",
             "allow-related"]
    with vm_ports(vms):
        t0 = time.monotonic()
        sh("ovn-nbctl", *cmds)
        programmed = nbctl_wait("sync")
        row: dict[str, object] = {"n": n, "m": m, "k": k, "program_s": round(
            time.monotonic() - t0, 2), "flows": flow_count()}
        src_ns, dst_ip = f"{NS}0", doc["vms"][dsts[0]]["ip"]
        row["icmp_denied_before"] = not ping_ok(src_ns, dst_ip)
        # The edit: one more ACL, src -> dst icmp; OVN's figure, then a probe's.
        t0 = time.monotonic()
        sh("ovn-nbctl", "acl-add", "src", "from-lport", "1002",
           "inport == @src && ip4.dst == $dst_ip4 && icmp4", "allow-related")
        landed: float | None = None
        while time.monotonic() - t0 < 10 and landed is None:
            if ping_ok(src_ns, dst_ip):
                landed = time.monotonic() - t0
        row["edit_probe_ms"] = None if landed is None else round(1000 * landed, 1)
        row["edit_wait_hv_ms"] = round(1000 * nbctl_wait(
            "acl-del", "src", "from-lport", "1002",
            "inport == @src && ip4.dst == $dst_ip4 && icmp4"), 1)
        row["flows_after_edit_reverted"] = flow_count()
        row["programmed_wait_s"] = round(programmed, 2)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    args = ap.parse_args()
    reason = why_not()
    rows: list[dict[str, object]] = []
    if reason is None:
        with ovn_running():
            if not nbctl_wait("sync") < 30:
                reason = "ovn-controller did not catch up"
            for n, m, k in SIZES:
                rows.append(measure(n, m, k))
                print(json.dumps(rows[-1]), flush=True)
    if rows:
        print_table(rows, [("n", "N"), ("m", "M"), ("k", "K"), ("flows", "br-int flows"),
                           ("program_s", "program s"), ("edit_probe_ms", "edit->ping ms"),
                           ("edit_wait_hv_ms", "revert --wait=hv ms")],
                    "OVN, one chassis, one N x M x K rule")
    if reason:
        print(f"OVN not measured: {reason}")
    write_json("ovn", {"rows": rows, "skipped": reason}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
