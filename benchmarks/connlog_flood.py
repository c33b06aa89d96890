"""The connection log under a flood of denied packets, on real OVS with the real daemon.

    sudo .venv/bin/python benchmarks/connlog_flood.py                  # 10,000/s for 15 s
    sudo .venv/bin/python benchmarks/connlog_flood.py --iperf-mbps 200 # iperf3 beside too
    sudo .venv/bin/python benchmarks/connlog_flood.py --rate 20000 --json out.json

One hypervisor bridge (userspace datapath), the daemon with `--connection-log`,
three VMs (network namespaces) of a tenant with `log_denied: true`: `f1` sends UDP
to a port no rule allows (64 source ports round-robin, each packet a denied first
packet, so each one reaches the log flow), while `v1` pings `v2` every 10 ms and
(with `--iperf-mbps`) sends it TCP with iperf3, and a thread reads GET /status and
GET /connections every 20 ms. Three phases in one process: no flood (the
baseline), the flood, and the flood again with logging off (the control: what the
denied packets cost the data plane without the log). Per phase: ping loss, iperf3
throughput and retransmits, API p50/p99, the daemon's CPU (% of one core, from
/proc), the connection log's counters (records written, dropped by the switch's
meter, dropped by the writer) and the packets the switch's log flow took
(`n_packets`). Figures are printed (and written with --json), not asserted. Needs
root and a running Open vSwitch; everything it made is removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import secrets
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.client.api import (  # noqa: E402
    ApiError,
    get_json,
    get_status,
    wait_policy,
    wait_programmed,
)
from sdnctl.dhcp.wire import checksum, mac_bytes  # noqa: E402
from sdnctl.lab.dhcpclient import netns_runner, sender_result, start_sender  # noqa: E402
from sdnctl.pipeline import table_id  # noqa: E402
from sdnctl.tools import require_or_exit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IFACE = "eth0"
VMS = {"f1": ("02:00:00:c1:00:01", "10.78.0.11"), "v1": ("02:00:00:c1:00:02", "10.78.0.12"),
       "v2": ("02:00:00:c1:00:03", "10.78.0.13")}
DENIED_PORT = 9999


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_files(folder: Path, dpid: int) -> tuple[Path, Path]:
    vms = "\n".join(f'  {n}: {{tenant: t, segment: s, mac: "{mac}", ip: {ip}, host: hv1}}'
                    for n, (mac, ip) in VMS.items())
    policy = folder / "policy.yaml"
    policy.write_text(f"""version: 1
tenants:
  t:
    log_denied: true
    segments:
      s: {{vlan: 78, subnet: 10.78.0.0/24}}
    groups:
      v: {{vms: [v1, v2]}}
    rules:
      - {{from: v, to: v, allow: [icmp, tcp/5201], log: true}}
vms:
{vms}
""")
    topo = folder / "topology.yaml"
    topo.write_text(f"version: 1\nswitches:\n  hv1: {{dpid: {dpid}, role: hypervisor}}\n"
                    "links: []\n")
    return policy, topo


def add_vm(undo: contextlib.ExitStack, bridge: str, name: str, port: int) -> str:
    """A namespace with the VM's MAC and address, its veth bound to `name` in OVSDB."""
    mac, ip = VMS[name]
    tag = secrets.token_hex(2)
    ns, outer, inner = f"bcl{tag}{name}", f"bcl{tag}o{name}", f"bcl{tag}i{name}"
    sh("ip", "netns", "add", ns)
    undo.callback(lambda: subprocess.run(["ip", "netns", "del", ns], check=False))
    sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
    undo.callback(lambda: subprocess.run(["ip", "link", "del", outer], check=False))
    sh("ip", "link", "set", inner, "netns", ns)
    sh("ip", "-n", ns, "link", "set", inner, "name", IFACE)
    sh("ip", "-n", ns, "link", "set", IFACE, "address", mac)
    sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", IFACE)
    sh("ip", "-n", ns, "link", "set", IFACE, "up")
    sh("ip", "netns", "exec", ns, "ethtool", "-K", IFACE, "tx", "off")
    sh("ip", "link", "set", outer, "up")
    undo.callback(lambda: subprocess.run(["ovs-vsctl", "--if-exists", "del-port", outer],
                                         check=False))
    sh("ovs-vsctl", "add-port", bridge, outer, "--", "set", "Interface", outer,
       f"ofport_request={port}", f"external_ids:vm-id={name}")
    return ns


def denied_frames(n: int = 64) -> list[bytes]:
    """UDP from f1 to v2's port DENIED_PORT, from `n` source ports (valid checksums:
    the userspace conntrack checks them)."""
    (smac, sip), (dmac, dip) = VMS["f1"], VMS["v2"]
    frames = []
    for i in range(n):
        payload = b"x" * 18
        udp = struct.pack("!HHHH", 20000 + i, DENIED_PORT, 8 + len(payload), 0) + payload
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0x4000, 64, 17, 0,
                           ipaddress.IPv4Address(sip).packed, ipaddress.IPv4Address(dip).packed)
        head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
        frames.append(mac_bytes(dmac) + mac_bytes(smac) + b"\x08\x00" + head + udp)
    return frames


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_flow_packets(bridge: str) -> int:
    out = sh("ovs-ofctl", "-O", "OpenFlow13", "dump-flows",
             f"unix:/var/run/openvswitch/{bridge}.mgmt", f"table={table_id('acl')}")
    return sum(int(m[1]) for line in out.splitlines() if "controller(meter_id=" in line
               and "priority=102" in line for m in [re.search(r"n_packets=(\d+)", line)] if m)


def phase(api: str, daemon_pid: int, nss: dict[str, str], bridge: str, seconds: float,
          rate: int | None, iperf_mbps: int, folder: Path) -> dict[str, object]:
    """One measured window: ping and iperf3 v1 -> v2, API sampling, and (with `rate`)
    the flood from f1."""
    before = get_json(api, "/status")["connection_log"]
    flow_before = log_flow_packets(bridge)
    cpu0, wall0 = cpu_seconds(daemon_pid), time.monotonic()
    sender = (start_sender(netns_runner(nss["f1"]), IFACE, denied_frames(), rate, seconds,
                           folder) if rate else None)
    count = int(seconds * 100)
    ping = subprocess.Popen(["ip", "netns", "exec", nss["v1"], "ping", "-n", "-q", "-i", "0.01",
                             "-c", str(count), "-W", "1", VMS["v2"][1]],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    iperf = subprocess.Popen(["ip", "netns", "exec", nss["v1"], "iperf3", "-c", VMS["v2"][1],
                              "-t", str(max(1, int(seconds) - 2)), "-b", f"{iperf_mbps}M",
                              "-J"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
                             ) if iperf_mbps else None
    latencies: list[float] = []
    failures = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal failures
        paths = ("/status", "/connections?limit=100")
        i = 0
        while not stop.is_set():
            t = time.monotonic()
            try:
                get_json(api, paths[i % 2], timeout=5)
                latencies.append(time.monotonic() - t)
            except ApiError:
                failures += 1
            i += 1
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ping_out = ping.communicate(timeout=seconds * 3 + 30)[0]
    iperf_out = iperf.communicate(timeout=seconds * 3 + 30)[0] if iperf else ""
    sent = elapsed = None
    if sender is not None:
        sent, elapsed = sender_result(sender, timeout=seconds * 3 + 30)
    stop.set()
    sampler.join()
    cpu = (cpu_seconds(daemon_pid) - cpu0) / (time.monotonic() - wall0) * 100
    time.sleep(3.0)  # OVS pushes flow counters lazily; a stats poll (1 s) reads the meter
    after = get_json(api, "/status")["connection_log"]
    took = log_flow_packets(bridge) - flow_before
    m = re.search(r"(\d+) packets transmitted, (\d+) received", ping_out)
    transmitted, received = (int(m[1]), int(m[2])) if m else (0, 0)
    iperf_doc = json.loads(iperf_out) if iperf_out.strip().startswith("{") else {}
    sent_sum = iperf_doc.get("end", {}).get("sum_sent", {})
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 2 else [float("nan")] * 99
    return {
        "flood_rate": rate or 0,
        "flood_sent": sent, "flood_rate_achieved": round(sent / elapsed) if sent else 0,
        "log_flow_packets": took,
        "records_deny": after["records"]["deny"] - before["records"]["deny"],
        "records_allow": after["records"]["allow"] - before["records"]["allow"],
        "meter_drops": after["meter_drops"] - before["meter_drops"],
        "writer_drops": after["writer_drops"] - before["writer_drops"],
        "ping_sent": transmitted, "ping_lost": transmitted - received,
        "iperf_mbps": round(sent_sum.get("bits_per_second", 0) / 1e6, 1),
        "iperf_retransmits": sent_sum.get("retransmits"),
        "api_calls": len(latencies), "api_failures": failures,
        "api_p50_ms": round(q[49] * 1000, 1), "api_p99_ms": round(q[98] * 1000, 1),
        "daemon_cpu_pct": round(cpu, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000, help="denied packets/s (10,000)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--iperf-mbps", type=int, default=0,
                        help="also iperf3 TCP v1 -> v2 at this rate (default 0: ping only)")
    parser.add_argument("--json", help="write the figures here (default benchmarks/results/"
                        "connlog_flood.json, connlog_flood_iperf.json with iperf3)")
    args = parser.parse_args(argv)
    require_or_exit("ovs-vsctl", "ip", "ping", "iperf3", "ethtool",
                    what="benchmarks/connlog_flood.py")
    out: dict[str, object] = {"rate": args.rate, "seconds": args.seconds,
                              "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    with contextlib.ExitStack() as undo:
        folder = Path(undo.enter_context(tempfile.TemporaryDirectory(prefix="sdnctl-connlog-")))
        dpid = 0xC1C0 << 32 | secrets.randbits(32)
        bridge = f"bcl{secrets.token_hex(3)}"
        of_port, api = free_port(), f"127.0.0.1:{free_port()}"
        sh("ovs-vsctl", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
           "fail_mode=secure", "protocols=OpenFlow13", f"other-config:datapath-id={dpid:016x}")
        undo.callback(lambda: subprocess.run(["ovs-vsctl", "--if-exists", "del-br", bridge]))
        sh("ovs-vsctl", "set-controller", bridge, f"tcp:127.0.0.1:{of_port}")
        policy, topo = write_files(folder, dpid)
        log_file = folder / "connections.jsonl"
        with (folder / "daemon.log").open("wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "sdnctl.daemon", "-p", str(policy), "-t", str(topo),
                 "--listen", f"127.0.0.1:{of_port}", "--api", api, "--stats-interval", "1",
                 "--connection-log", str(log_file)],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
        undo.callback(daemon.wait, 10)
        undo.callback(daemon.terminate)
        wait_programmed(api, ["hv1"], timeout=60)
        nss = {name: add_vm(undo, bridge, name, 100 + i) for i, name in enumerate(VMS)}
        server = subprocess.Popen(["ip", "netns", "exec", nss["v2"], "iperf3", "-s"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        undo.callback(server.wait, 5)
        undo.callback(server.terminate)
        time.sleep(2)  # bindings seen, the switch programmed for the VMs
        wait_programmed(api, ["hv1"], timeout=60)
        subprocess.run(["ip", "netns", "exec", nss["v1"], "ping", "-c", "3", "-W", "1",
                        VMS["v2"][1]], capture_output=True)
        out["baseline"] = phase(api, daemon.pid, nss, bridge, args.seconds, None,
                                args.iperf_mbps, folder)
        out["flood"] = phase(api, daemon.pid, nss, bridge, args.seconds, args.rate,
                             args.iperf_mbps, folder)
        # The control: the same flood with logging off (the policy edited), so what the
        # data plane pays for 10,000 packets/s is told apart from what logging adds.
        text = policy.read_text().replace("    log_denied: true\n", "")
        policy.write_text(text)
        wait_policy(api, hashlib.sha256(text.encode()).hexdigest(), timeout=60)
        out["flood_unlogged"] = phase(api, daemon.pid, nss, bridge, args.seconds, args.rate,
                                      args.iperf_mbps, folder)
        status = get_status(api)
        out["connection_log"] = status["connection_log"]
        out["file_lines"] = len(log_file.read_text().splitlines()) if log_file.exists() else 0
    print(json.dumps(out, indent=1))
    default = "connlog_flood_iperf.json" if args.iperf_mbps else "connlog_flood.json"
    Path(args.json or REPO / "benchmarks" / "results" / default).write_text(
        json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
