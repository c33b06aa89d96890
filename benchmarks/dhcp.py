"""DHCP from the policy on real OVS: lease times, and a DISCOVER storm from one VM.

    sudo .venv/bin/python benchmarks/dhcp.py                       # 8 VMs, 10,000/s for 8 s
    sudo .venv/bin/python benchmarks/dhcp.py --vms 12 --rate 20000 --json out.json

One hypervisor bridge (userspace datapath) under the real daemon, VMs as network
namespaces running busybox udhcpc. Measures, in one run:
1. lease after binding: each VM's port is bound in OVSDB and its client started
   at once; the time until the client holds its lease (median over the VMs);
2. leases of bound VMs, quiet: rounds of every VM but the first taking a lease;
3. the same rounds while the first VM sends DHCP DISCOVERs at `--rate` for
   `--seconds`, with GET /status timed every 20 ms; afterwards /metrics says what
   the storming VM's meter dropped and how many requests reached the controller.
Figures are printed (and written with --json), not asserted. Needs root and a
running Open vSwitch; everything it made is removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.client.api import (  # noqa: E402
    ApiError,
    get_metrics,
    get_status,
    wait_programmed,
)
from sdnctl.dhcp.wire import MessageType, encode_request  # noqa: E402
from sdnctl.lab.dhcpclient import (  # noqa: E402
    netns_runner,
    obtain_leases,
    sender_result,
    start_sender,
)
from sdnctl.tools import require_or_exit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IFACE = "eth0"


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def files(folder: Path, n: int, dpid: int) -> tuple[Path, Path]:
    vms = "\n".join(
        f'  v{i}: {{tenant: t, segment: s, mac: "02:00:00:d4:00:{i:02x}", ip: 10.77.0.{10 + i},'
        f" host: hv1}}" for i in range(n))
    policy = folder / "policy.yaml"
    policy.write_text(f"""version: 1
tenants:
  t:
    default: allow
    dns: [10.77.0.2]
    segments:
      s: {{vlan: 77, subnet: 10.77.0.0/24, gateway: 10.77.0.1}}
vms:
{vms}
""")
    topo = folder / "topology.yaml"
    topo.write_text(f"version: 1\nswitches:\n  hv1: {{dpid: {dpid}, role: hypervisor}}\n"
                    "links: []\n")
    return policy, topo


def add_vm(undo: contextlib.ExitStack, bridge: str, i: int) -> str:
    """A namespace with no address, its veth bound to VM v<i> in OVSDB."""
    tag = secrets.token_hex(2)
    ns, outer, inner = f"bdh{tag}n{i}", f"bdh{tag}o{i}", f"bdh{tag}i{i}"
    sh("ip", "netns", "add", ns)
    undo.callback(lambda: subprocess.run(["ip", "netns", "del", ns], check=False))
    sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
    undo.callback(lambda: subprocess.run(["ip", "link", "del", outer], check=False))
    sh("ip", "link", "set", inner, "netns", ns)
    sh("ip", "-n", ns, "link", "set", inner, "name", IFACE)
    sh("ip", "-n", ns, "link", "set", IFACE, "address", f"02:00:00:d4:00:{i:02x}")
    sh("ip", "-n", ns, "link", "set", IFACE, "up")
    sh("ip", "link", "set", outer, "up")
    undo.callback(lambda: subprocess.run(["ovs-vsctl", "--if-exists", "del-port", outer],
                                         check=False))
    sh("ovs-vsctl", "add-port", bridge, outer, "--", "set", "Interface", outer,
       f"ofport_request={100 + i}", f"external_ids:vm-id=v{i}")
    return ns


def lease_round(nss: dict[str, str], folder: Path) -> list[float]:
    runners = {vm: netns_runner(ns) for vm, ns in nss.items()}
    return [lease.took_s for lease in obtain_leases(runners, IFACE, folder).values()]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median_s": round(statistics.median(values), 3),
            "max_s": round(max(values), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=8)
    parser.add_argument("--rate", type=int, default=10_000, help="DISCOVERs/s (default 10,000)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    require_or_exit("ovs-vsctl", "ip", "udhcpc", what="benchmarks/dhcp.py")
    out: dict[str, object] = {"vms": args.vms, "rate": args.rate, "seconds": args.seconds}
    with contextlib.ExitStack() as undo:
        folder = Path(undo.enter_context(tempfile.TemporaryDirectory(prefix="sdnctl-dhcp-")))
        dpid = 0xD4C0 << 32 | secrets.randbits(32)
        bridge = f"bdh{secrets.token_hex(3)}"
        of_port, api = free_port(), f"127.0.0.1:{free_port()}"
        sh("ovs-vsctl", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
           "fail_mode=secure", "protocols=OpenFlow13", f"other-config:datapath-id={dpid:016x}")
        undo.callback(lambda: subprocess.run(["ovs-vsctl", "--if-exists", "del-br", bridge]))
        sh("ovs-vsctl", "set-controller", bridge, f"tcp:127.0.0.1:{of_port}")
        policy, topo = files(folder, args.vms, dpid)
        with (folder / "daemon.log").open("wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "sdnctl.daemon", "-p", str(policy), "-t", str(topo),
                 "--listen", f"127.0.0.1:{of_port}", "--api", api, "--stats-interval", "1"],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
        undo.callback(daemon.wait, 10)
        undo.callback(daemon.terminate)
        wait_programmed(api, ["hv1"], timeout=60)

        after_binding = []
        nss: dict[str, str] = {}
        for i in range(args.vms):
            nss[f"v{i}"] = add_vm(undo, bridge, i)  # bound now: the client starts at once
            after_binding += lease_round({f"v{i}": nss[f"v{i}"]}, folder)
        out["lease_after_binding"] = summary(after_binding)
        others = {vm: ns for vm, ns in nss.items() if vm != "v0"}
        quiet = [t for _ in range(3) for t in lease_round(others, folder)]
        out["leases_quiet"] = summary(quiet)

        discover = encode_request(MessageType.DISCOVER, "02:00:00:d4:00:00", 0x5151)
        sender = start_sender(netns_runner(nss["v0"]), IFACE, [discover], args.rate,
                              args.seconds, folder)
        latencies: list[float] = []
        failures = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal failures
            while not stop.is_set():
                t = time.monotonic()
                try:
                    get_status(api, timeout=5)
                    latencies.append(time.monotonic() - t)
                except ApiError:
                    failures += 1
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        time.sleep(0.5)  # the storm is on
        sampler.start()
        stormy: list[float] = []
        deadline = time.monotonic() + args.seconds - 1.5
        while time.monotonic() < deadline:
            stormy += lease_round(others, folder)
        stop.set()
        sampler.join()
        sent, elapsed = sender_result(sender)
        time.sleep(2.5)  # a stats poll reads the meters
        metrics = get_metrics(api)
        drops = re.search(r'sdnctl_dhcp_meter_drops_vm_total\{vm="v0"\} (\d+)', metrics)
        reached = sum(int(n) for n in re.findall(
            r'sdnctl_dhcp_requests_vm_total\{vm="v0",outcome="\w+"\} (\d+)', metrics))
        quantiles = statistics.quantiles(latencies, n=100)
        out["storm"] = {
            "sent": sent, "rate": round(sent / elapsed), "meter_drops": int(drops[1]) if drops
            else None, "reached_controller": reached,
            "leases": summary(stormy), "lease_ratio_vs_quiet": round(
                statistics.median(stormy) / statistics.median(quiet), 2),
            "api_p50_ms": round(quantiles[49] * 1000, 1),
            "api_p99_ms": round(quantiles[98] * 1000, 1), "api_calls": len(latencies),
            "api_failures": failures,
        }
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
