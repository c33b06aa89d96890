"""Holding the simulator to Open vSwitch: the pieces of tests/integration/test_sim_ovs.py.

- `SwitchBridge` loads one switch's compiled FlowSet into a real netdev bridge,
  every flow with a cookie of its own (its index), so a trace names the exact flow.
- `Appctl` talks JSON-RPC to ovs-vswitchd's control socket directly: `ofproto/trace`
  costs about a millisecond that way, against ~7 ms for a fork of `ovs-appctl`.
- `parse_trace` reads a trace: the flows hit, table by table and recirculation by
  recirculation, and the ports output to.
- `generate_cases` makes the packets (scapy frames, with the port they come in on
  and the conntrack states `--ct-next` hands out), `packet_fields` turns a frame
  into the simulator's packet as OVS's flow extraction sees it.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scapy.contrib.mpls import MPLS
from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet as Frame
from scapy.packet import Raw, raw

from sdnctl.flows import (
    OFPP_CONTROLLER,
    OFPVID_PRESENT,
    FlowSet,
    render_flow_ofctl,
    render_group_ofctl,
    render_meter_ofctl,
)
from sdnctl.verify.simulate import Conntrack, Packet

OVS_RUN = Path("/var/run/openvswitch")
CT_STATES = ("trk,new", "trk,est", "trk,est,rpl", "trk,rel", "trk,rel,rpl", "trk,inv")
_CT_FLAG = {"trk": 0x20, "new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08, "inv": 0x10}


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


class Appctl:
    """ovs-vswitchd's unixctl server, over one socket (what `ovs-appctl` does per call)."""

    def __init__(self) -> None:
        pid = (OVS_RUN / "ovs-vswitchd.pid").read_text().strip()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(OVS_RUN / f"ovs-vswitchd.{pid}.ctl"))
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.n = 0

    def call(self, method: str, *params: str) -> str:
        self.n += 1
        self.sock.sendall(json.dumps({"method": method, "params": list(params),
                                      "id": self.n}).encode())
        while True:
            try:
                reply, end = self.decoder.raw_decode(self.buf)
            except ValueError:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    raise ConnectionError("ovs-vswitchd closed the control socket") from None
                self.buf += chunk.decode()
                continue
            self.buf = self.buf[end:].lstrip()
            if reply.get("error") is not None:
                raise RuntimeError(f"{method} {params}: {reply['error']}")
            return str(reply["result"])

    def close(self) -> None:
        self.sock.close()


class SwitchBridge:
    """One switch's FlowSet in a fresh netdev bridge, with a port for each OpenFlow
    port the flows name (internal ports, up, so fast-failover buckets are live)."""

    def __init__(self, fs: FlowSet, ports: set[int], tunnel_port: int | None) -> None:
        self.name = f"sso{uuid.uuid4().hex[:7]}"
        self.flows = list(fs.flows)
        self.cookie_of = {id(f): i + 1 for i, f in enumerate(self.flows)}
        self.flow_of_cookie = {i + 1: f for i, f in enumerate(self.flows)}
        cmd = ["ovs-vsctl", "add-br", self.name, "--", "set", "bridge", self.name,
               "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure"]
        self.ifaces: list[str] = []
        for p in sorted(ports - {tunnel_port}):
            iface = f"{self.name}p{p}"
            self.ifaces.append(iface)
            cmd += ["--", "add-port", self.name, iface, "--", "set", "interface", iface,
                    "type=internal", f"ofport_request={p}"]
        if tunnel_port is not None:  # its own UDP port: no clash with other bridges' tunnels
            iface = f"{self.name}t"
            cmd += ["--", "add-port", self.name, iface, "--", "set", "interface", iface,
                    "type=vxlan", "options:remote_ip=flow", "options:key=flow",
                    f"options:dst_port={40000 + random.randrange(20000)}",
                    f"ofport_request={tunnel_port}"]
        sh(*cmd)
        try:
            assert sh("ovs-vsctl", "get", "bridge", self.name, "datapath_type").strip() == "netdev"
            for iface in self.ifaces:
                sh("ip", "link", "set", iface, "up")
            of = ["ovs-ofctl", "-O", "OpenFlow13"]
            for m in fs.meters:
                sh(*of, "add-meter", self.name, render_meter_ofctl(m))
            for g in fs.groups:
                sh(*of, "add-group", self.name, render_group_ofctl(g))
            lines = [re.sub(r"cookie=0x[0-9a-f]+", f"cookie={self.cookie_of[id(f)]:#x}",
                            render_flow_ofctl(f)) for f in self.flows]
            subprocess.run([*of, "add-flows", self.name, "-"], input="\n".join(lines) + "\n",
                           check=True, capture_output=True, text=True)
            agg = sh(*of, "dump-aggregate", self.name)
            assert f"flow_count={len(lines)}" in agg, agg
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", self.name], check=False)


# ---- traces ---------------------------------------------------------------------

_HIT = re.compile(r"^\s*(\d+)\. .*priority (\d+)(?:, cookie (0x[0-9a-f]+))?$")
_OUTPUT = re.compile(r"^\s+output:(\d+)$")
_IN_PORT = re.compile(r"^\s+(?:output:)?IN_PORT$", re.I)
_CONTROLLER = re.compile(r"^\s+CONTROLLER:\d+$")  # the metered controller path's exit


@dataclass
class Verdict:
    """What a packet did in one switch: the flows it hit (table, cookie), in order,
    the ports it was output to (sorted) and, when it left by one port only, the
    headers it left with (`headers`)."""

    hits: list[tuple[int, int]] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    left_with: dict[str, object] = field(default_factory=dict)

    def text(self) -> str:
        return f"hits={self.hits} outputs={self.outputs} left with {self.left_with}"


def headers(fields: dict[str, object], tunnel: bool) -> dict[str, object]:
    """The headers a frame leaves with, from the simulator's packet: addresses, tag,
    label, TTL, ARP fields, and (`tunnel`: sent into one) tunnel key and far end."""
    out: dict[str, object] = {"eth_src": fields.get("eth_src"), "eth_dst": fields.get("eth_dst")}
    vid = fields.get("vlan_vid")
    out["vlan"] = int(vid) & 0xFFF if isinstance(vid, int) and vid else None
    if fields.get("eth_type") == 0x8847:
        out["mpls_label"] = fields.get("mpls_label")
        out["mpls_tc"] = fields.get("mpls_tc", 0)
    elif fields.get("eth_type") in (0x0800, 0x86DD):
        out["ip_ttl"] = fields.get("ip_ttl")
    elif fields.get("eth_type") == 0x0806:
        for name in ("arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha"):
            out[name] = fields.get(name)
    if tunnel:
        out["tun_id"], out["tun_dst"] = fields.get("tun_id"), fields.get("tun_dst")
    return out


_OVS_NAME = {"dl_src": "eth_src", "dl_dst": "eth_dst", "nw_ttl": "ip_ttl",
             "mpls_label": "mpls_label", "arp_op": "arp_op", "arp_spa": "arp_spa",
             "arp_tpa": "arp_tpa", "arp_sha": "arp_sha", "arp_tha": "arp_tha",
             "tun_id": "tun_id", "tun_dst": "tun_dst", "dl_vlan": "vlan_vid",
             "mpls_tc": "mpls_tc"}
_IP6_KINDS = {"ipv6", "tcp6", "udp6", "icmp6", "sctp6"}


def final_headers(text: str, tunnel: bool) -> dict[str, object]:
    """`headers` of the last `Final flow` of a trace (its `Flow` when unchanged)."""
    lines = text.splitlines()
    finals = [i for i, ln in enumerate(lines) if ln.startswith("Final flow:")]
    i = finals[-1]
    line = lines[i].removeprefix("Final flow:").strip()
    if line == "unchanged":
        line = next(ln for ln in reversed(lines[:i]) if ln.startswith("Flow:"))
        line = line.removeprefix("Flow:").strip()
    words = line.split(",")
    fields: dict[str, object] = {}
    kinds = {w for w in words if "=" not in w}
    for w in words:
        name, _, value = w.partition("=")
        if name in _OVS_NAME:
            fields[_OVS_NAME[name]] = value
    for name in ("ip_ttl", "mpls_label", "mpls_tc", "arp_op", "vlan_vid"):
        if name in fields:
            fields[name] = int(str(fields[name]), 0)
    # The key of a frame sent into a tunnel: the final flow leaves it out (native
    # tunnel output), the action that set it says it.
    keys = re.findall(r"set_field:(0x[0-9a-f]+)->tun_id$", text, re.M)
    if keys:
        fields["tun_id"] = keys[-1]
    if "tun_id" in fields:
        fields["tun_id"] = int(str(fields["tun_id"]), 16)
    fields["eth_type"] = (0x8847 if "mpls" in kinds else 0x0806 if "arp" in kinds
                          else 0x86DD if kinds & _IP6_KINDS
                          else 0x0800 if "ip_ttl" in fields else None)
    return headers(fields, tunnel)


_RECIRC = re.compile(r"recirc\((0x[0-9a-f]+)\)$")


def unfollowed_recirculation(text: str) -> str | None:
    """The recirculation id a trace ends on without following it (OVS recirculates
    after `pop_mpls` to parse the packet under the label; `ofproto/trace` follows
    only conntrack's), or None."""
    last = [ln for ln in text.splitlines() if ln.startswith("Datapath actions:")][-1]
    m = _RECIRC.search(last)
    if m is None or f"{m.group(1)}) - resume" in text:
        return None
    return m.group(1)


def pop_mpls_bytes(frame: bytes) -> bytes:
    """`frame` with its top MPLS label removed and the ethertype before it set to
    what the label carries (traffic class 1: IPv6, else IPv4), as `pop_mpls` leaves it."""
    at = 12
    while frame[at:at + 2] in (b"\x81\x00", b"\x88\xa8"):
        at += 4
    assert frame[at:at + 2] == b"\x88\x47", frame[at:at + 2]
    tc = (frame[at + 4] >> 1) & 0x7
    return frame[:at] + (b"\x86\xdd" if tc == 1 else b"\x08\x00") + frame[at + 6:]


_BRIDGE = re.compile(r'^\s*bridge\("([^"]+)"\)$')


def parse_trace(text: str, bridge: str, in_port: int, v: Verdict | None = None) -> Verdict:
    """The flows `bridge` hit and its outputs. A frame sent into a tunnel whose far
    end the host can route to is traced on into the bridge that carries it (an
    overlay lab's underlay, say): that is not this switch, and is skipped."""
    v = v if v is not None else Verdict()
    lines = text.splitlines()
    ours = True
    for i, line in enumerate(lines):
        b = _BRIDGE.match(line)
        if b:
            ours = b.group(1) == bridge
            continue
        if not ours:
            continue
        m = _HIT.match(line)
        if m:
            v.hits.append((int(m.group(1)), int(m.group(3) or "0", 16)))
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if "skipping output to input port" in nxt:
            continue
        m = _OUTPUT.match(line)
        if m:
            v.outputs.append(int(m.group(1)))
        elif _IN_PORT.match(line):
            v.outputs.append(in_port)
        elif _CONTROLLER.match(line):
            v.outputs.append(OFPP_CONTROLLER)
    v.outputs.sort()
    return v


class ScriptedConntrack(Conntrack):
    """Conntrack that answers what `--ct-next` told OVS, in order, and commits nothing."""

    def __init__(self, states: list[str]) -> None:
        super().__init__()
        self.states = list(states)

    def lookup(self, switch: str, zone: int, pkt: Packet) -> int:
        text = self.states.pop(0) if self.states else "trk,new"
        bits = 0
        for flag in text.split(","):
            bits |= _CT_FLAG[flag]
        return bits

    def commit(self, switch: str, zone: int, pkt: Packet, mark: int | None = None,
               nat: object = None) -> None:
        pass


# ---- packets --------------------------------------------------------------------


def _mac(text: str) -> str:
    return text.lower()


def packet_fields(frame: Frame) -> Packet:
    """The simulator's packet for `frame`, as OVS extracts a flow from it: the outer
    VLAN tag only (vlan-limit 1), an MPLS frame's top label (and, for the pipeline
    after a pop, the IPv4 packet under a bottom-of-stack label), no L4 header in a
    later fragment (ports and flags read 0)."""
    pkt: Packet = {"eth_src": _mac(frame[Ether].src), "eth_dst": _mac(frame[Ether].dst)}
    layer = frame[Ether].payload
    eth_type = frame[Ether].type
    if isinstance(layer, (Dot1Q, Dot1AD)):
        pkt["vlan_vid"] = OFPVID_PRESENT | layer.vlan  # tagged, even with VID 0
        eth_type = layer.type
        layer = layer.payload
    pkt["eth_type"] = eth_type
    if isinstance(layer, MPLS):
        pkt["mpls_label"] = layer.label
        pkt["mpls_tc"] = layer.cos
        if not layer.s:
            return pkt
        layer = layer.payload
    if isinstance(layer, ARP) and eth_type == 0x0806:
        pkt.update(arp_op=layer.op, arp_spa=layer.psrc, arp_tpa=layer.pdst,
                   arp_sha=_mac(layer.hwsrc), arp_tha=_mac(layer.hwdst))
    elif isinstance(layer, IP):
        pkt.update(ipv4_src=layer.src, ipv4_dst=layer.dst, ip_proto=layer.proto,
                   ip_ttl=layer.ttl)
        later = layer.frag > 0
        if later or layer.flags.MF:
            pkt["ip_frag"] = 3 if later else 1  # OVS's nw_frag: a fragment, not the first
        l4 = layer.payload
        if layer.proto == 6:
            tcp = l4 if isinstance(l4, TCP) else None
            pkt.update(tcp_src=0 if later or tcp is None else tcp.sport,
                       tcp_dst=0 if later or tcp is None else tcp.dport,
                       tcp_flags=0 if later or tcp is None else int(tcp.flags))
        elif layer.proto == 17:
            udp = l4 if isinstance(l4, UDP) else None
            pkt.update(udp_src=0 if later or udp is None else udp.sport,
                       udp_dst=0 if later or udp is None else udp.dport)
        elif layer.proto == 1:
            icmp = l4 if isinstance(l4, ICMP) else None
            pkt.update(icmpv4_type=0 if later or icmp is None else icmp.type,
                       icmp_id=0 if later or icmp is None else icmp.id)
    elif isinstance(layer, IPv6):
        _ipv6_fields(layer, pkt)
    return pkt


_EXT_HEADERS = (0, 43, 60, 51)  # hop-by-hop, routing, destination options, AH


def _ipv6_fields(layer: Frame, pkt: Packet) -> None:
    """As OVS reads IPv6: through extension headers to the upper-layer protocol; a
    fragment header makes it a fragment, and a later fragment's protocol is the
    fragment header's next header, with no L4 fields."""
    pkt.update(ipv6_src=str(ipaddress.IPv6Address(layer.src)),
               ipv6_dst=str(ipaddress.IPv6Address(layer.dst)), ip_ttl=layer.hlim)
    nh, l4 = layer.nh, layer.payload
    later = False
    while nh in (*_EXT_HEADERS, 44):
        if nh == 44:
            later = l4.offset > 0
            pkt["ip_frag"] = 3 if later else 1
            if later:  # OVS stops here: the protocol reads as the fragment header's
                break
        nh, l4 = l4.nh, l4.payload
    pkt["ip_proto"] = nh
    l4 = None if later or isinstance(l4, Raw) else l4
    if nh == 6:
        pkt.update(tcp_src=l4.sport if l4 else 0, tcp_dst=l4.dport if l4 else 0,
                   tcp_flags=int(l4.flags) if l4 else 0)
    elif nh == 17:
        pkt.update(udp_src=l4.sport if l4 else 0, udp_dst=l4.dport if l4 else 0)
    elif nh == 58:
        pkt["icmpv6_type"] = l4.type if l4 is not None else 0
        if l4 is not None and l4.type in (128, 129):
            pkt["icmp_id"] = l4.id


@dataclass(frozen=True)
class Host:
    """An address a frame may claim: a VM's or a gateway's (MAC, IPv4)."""

    mac: str
    ip: str
    ip6: str | None = None


@dataclass
class Case:
    switch: str
    in_port: int
    frame: Frame
    ct: list[str]
    tunnel: dict[str, str] = field(default_factory=dict)  # tun_id/tun_src/tun_dst
    what: str = ""

    def flow_text(self) -> str:
        extra = "".join(f",{k}={v}" for k, v in self.tunnel.items())
        return f"in_port={self.in_port}{extra}"


@dataclass
class SwitchView:
    """What the generator knows of one switch: its VM ports (port -> host, segment
    VLAN), trunks, tunnel port and keys, and every address of the network."""

    name: str
    vm_ports: dict[int, tuple[Host, int | None]]
    trunks: list[int]
    tunnel_port: int | None
    vnis: list[int]
    labels: list[int]
    vlans: list[int]
    hosts: list[Host]
    gateways: list[Host]
    tcp_ports: list[int]
    udp_ports: list[int]
    tunnel_ips: list[str]


@dataclass(frozen=True)
class OtherL4:
    """An IP protocol with no header of its own here: 8 zero bytes of payload."""

    proto: int


TCP_FLAG_SETS = [0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01, 0x00, 0x03, 0x06, 0x29, 0x3F,
                 0xC2, 0x08, 0x20]
OTHER_PROTOS = [47, 50, 132, 2, 89]


def _ip_payload(rng: random.Random, v: SwitchView) -> tuple[Frame, str]:
    kind = rng.choice(["tcp", "tcp", "tcp", "udp", "udp", "icmp", "icmp", "other"])
    if kind == "tcp":
        flags = rng.choice(TCP_FLAG_SETS) if rng.random() < 0.8 else rng.randrange(256)
        port = rng.choice(v.tcp_ports) if rng.random() < 0.7 else rng.randrange(65536)
        tcp = TCP(sport=rng.randrange(1024, 65536), dport=port, flags=flags)
        return tcp, f"tcp/{port} {flags:#x}"
    if kind == "udp":
        port = rng.choice(v.udp_ports) if rng.random() < 0.7 else rng.randrange(65536)
        return UDP(sport=rng.randrange(1024, 65536), dport=port), f"udp/{port}"
    if kind == "icmp":
        t = rng.choice([8, 8, 0, 3, 11, 13, 5])
        return ICMP(type=t, id=rng.randrange(65536)), f"icmp {t}"
    proto = rng.choice(OTHER_PROTOS)
    return (GRE() if proto == 47 else OtherL4(proto)), f"proto {proto}"


def _ipv4(rng: random.Random, v: SwitchView, src: Host, dst_mac: str, dst_ip: str,
          proto_layer: Frame, what: str) -> tuple[Frame, str]:
    ttl = rng.choice([64, 64, 64, 1, 0, 2])
    ip = IP(src=src.ip, dst=dst_ip, ttl=ttl)
    if isinstance(proto_layer, OtherL4):
        ip.proto, proto_layer = proto_layer.proto, Raw(b"\x00" * 8)
    frag = rng.random()
    if frag < 0.08:
        ip.flags, what = "MF", what + " first-fragment"
    elif frag < 0.16:
        ip.frag, what = rng.randrange(1, 200), what + " later-fragment"
    return Ether(src=src.mac, dst=dst_mac) / ip / proto_layer, f"ipv4 ttl={ttl} {what}"


def _tagged(rng: random.Random, v: SwitchView, frame: Frame) -> tuple[Frame, str]:
    """Wrap a frame in VLAN / QinQ / MPLS headers, sometimes."""
    eth, inner = frame[Ether], frame[Ether].payload
    r = rng.random()
    vlan = rng.choice(v.vlans + [0, 4094])
    if r < 0.1:
        return Ether(src=eth.src, dst=eth.dst) / Dot1Q(vlan=vlan) / inner, f"vlan {vlan}"
    if r < 0.16:
        outer = rng.choice([Dot1Q, Dot1AD])
        second = Dot1Q(vlan=rng.choice(v.vlans + [7]))
        return (Ether(src=eth.src, dst=eth.dst) / outer(vlan=vlan) / second / inner,
                f"qinq {outer.__name__} {vlan}")
    if r < 0.24 and isinstance(inner, (IP, IPv6)):
        label = rng.choice(v.labels + [16, 999])
        stack = MPLS(label=label, s=1, ttl=64, cos=int(isinstance(inner, IPv6)))
        if rng.random() < 0.3:
            under = MPLS(label=rng.choice(v.labels + [5]), s=1, ttl=64)
            stack = MPLS(label=label, s=0, ttl=64) / under
        if rng.random() < 0.5:
            return (Ether(src=eth.src, dst=eth.dst) / Dot1Q(vlan=vlan, type=0x8847) / stack / inner,
                    f"vlan {vlan} mpls {label}")
        return Ether(src=eth.src, dst=eth.dst, type=0x8847) / stack / inner, f"mpls {label}"
    return frame, ""


def _arp(rng: random.Random, v: SwitchView, me: Host) -> tuple[Frame, str]:
    others = v.hosts + v.gateways
    target = rng.choice(others + [Host("02:00:00:99:99:99", "10.250.0.9")])
    kind = rng.choice(["request", "request", "reply", "gratuitous", "spoof-sha", "spoof-spa",
                       "spoof-eth", "probe"])
    sha, spa, src = me.mac, me.ip, me.mac
    op, tpa, tha, dst = 1, target.ip, "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"
    if kind == "reply":
        op, tha, dst = 2, target.mac, target.mac
    elif kind == "gratuitous":
        tpa = spa
    elif kind == "spoof-sha":
        sha = rng.choice(others).mac
    elif kind == "spoof-spa":
        spa = rng.choice(others).ip
    elif kind == "spoof-eth":
        src = rng.choice(others).mac
    elif kind == "probe":
        spa = "0.0.0.0"
    frame = Ether(src=src, dst=dst) / ARP(op=op, hwsrc=sha, psrc=spa, hwdst=tha, pdst=tpa)
    return frame, f"arp {kind} {spa}->{tpa}"


def _from_vm(rng: random.Random, v: SwitchView, port: int) -> tuple[Frame, str]:
    me, _ = v.vm_ports[port]
    src = me
    spoof = rng.random()
    tag = ""
    if spoof < 0.1:
        src, tag = Host(rng.choice(v.hosts + v.gateways).mac, me.ip), "spoofed-mac "
    elif spoof < 0.2:
        src, tag = Host(me.mac, rng.choice(v.hosts + v.gateways).ip), "spoofed-ip "
    elif spoof < 0.25:
        src, tag = Host("02:00:00:66:66:66", "10.66.66.66"), "made-up "
    if rng.random() < 0.3:
        frame, what = _arp(rng, v, src)
    elif me.ip6 is not None and rng.random() < 0.45:
        frame, what = _from_vm6(rng, v, me, src)
    else:
        dst = rng.choice(v.hosts)
        r = rng.random()
        if r < 0.5:
            dst_mac = dst.mac
        elif r < 0.85:
            dst_mac = rng.choice(v.gateways).mac if v.gateways else dst.mac
        else:
            dst_mac = rng.choice(["ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "02:00:00:12:34:56"])
        dst_ip = dst.ip if rng.random() < 0.9 else rng.choice(["10.250.1.1", "8.8.8.8"])
        layer, what = _ip_payload(rng, v)
        frame, what = _ipv4(rng, v, src, dst_mac, dst_ip, layer, what)
    frame, tagwhat = _tagged(rng, v, frame)
    return frame, f"{tag}{what} {tagwhat}".strip()


def _link_local(mac: str) -> str:
    raw_mac = bytearray(int(b, 16) for b in mac.split(":"))
    raw_mac[0] ^= 2
    iid = bytes(raw_mac[:3]) + b"\xff\xfe" + bytes(raw_mac[3:])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + iid))


def _ip6_payload(rng: random.Random, v: SwitchView, me: Host | None = None
                 ) -> tuple[Frame, str]:
    """An IPv6 upper layer: TCP, UDP, ICMPv6 echo and errors, and (from a VM, `me`)
    neighbour discovery, MLD and DHCPv6 of every kind a VM might send or forge."""
    kinds = ["tcp", "tcp", "udp", "echo", "echo-reply", "error"]
    if me is not None:
        kinds += ["ns", "ns", "na", "ra", "rs", "redirect", "mld", "dhcp6-server", "dhcp6"]
    kind = rng.choice(kinds)
    if kind == "tcp":
        flags = rng.choice(TCP_FLAG_SETS)
        port = rng.choice(v.tcp_ports) if rng.random() < 0.7 else rng.randrange(65536)
        return TCP(sport=rng.randrange(1024, 65536), dport=port, flags=flags), \
            f"tcp6/{port} {flags:#x}"
    if kind == "udp":
        port = rng.choice(v.udp_ports) if rng.random() < 0.7 else rng.randrange(65536)
        return UDP(sport=rng.randrange(1024, 65536), dport=port), f"udp6/{port}"
    if kind in ("echo", "echo-reply"):
        cls = ICMPv6EchoRequest if kind == "echo" else ICMPv6EchoReply
        return cls(id=rng.randrange(65536)), f"icmp6 {kind}"
    if kind == "error":
        cls = rng.choice([ICMPv6DestUnreach, ICMPv6PacketTooBig, ICMPv6TimeExceeded])
        return cls() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(), "icmp6 error"
    hosts6 = [h for h in v.hosts + v.gateways if h.ip6]
    target = rng.choice(hosts6).ip6 if hosts6 else "2001:db8::9"
    mac = me.mac if me is not None else "02:00:00:00:00:01"
    if kind == "ns":
        return ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr=mac), f"ns {target}"
    if kind == "na":
        return ICMPv6ND_NA(tgt=target, R=0, S=1, O=1), f"na {target}"
    if kind == "ra":
        return ICMPv6ND_RA() / ICMPv6NDOptSrcLLAddr(lladdr=mac), "ra"
    if kind == "rs":
        return ICMPv6ND_RS(), "rs"
    if kind == "redirect":
        return ICMPv6ND_Redirect(tgt=target, dst="2001:db8::99"), "redirect"
    if kind == "mld":
        return ICMPv6MLReport2(), "mld"
    sport, dport = (547, 546) if kind == "dhcp6-server" else (546, 547)
    return UDP(sport=sport, dport=dport), kind


def _ipv6(rng: random.Random, src_mac: str, src_ip: str, dst_mac: str, dst_ip: str,
          upper: Frame, what: str) -> tuple[Frame, str]:
    """An IPv6 frame, sometimes behind extension headers or as a fragment; built and
    read back, so every field is concrete."""
    hlim = rng.choice([64, 64, 255, 1, 0, 2])
    ip6 = IPv6(src=src_ip, dst=dst_ip, hlim=hlim)
    ext = rng.random()
    if ext < 0.08:
        ip6, what = ip6 / IPv6ExtHdrHopByHop(), what + " hop-by-hop"
    elif ext < 0.12:
        ip6, what = ip6 / IPv6ExtHdrDestOpt(), what + " dst-opts"
    elif ext < 0.15:
        ip6, what = ip6 / IPv6ExtHdrRouting(), what + " routing-hdr"
    frag = rng.random()
    if frag < 0.08:
        ip6, what = ip6 / IPv6ExtHdrFragment(m=1, id=rng.randrange(1 << 32)), \
            what + " first-fragment"
    elif frag < 0.16:
        body = Raw(raw(upper)[:16] or b"\0" * 8)
        built = Ether(src=src_mac, dst=dst_mac) / ip6 / IPv6ExtHdrFragment(
            nh=_upper_nh(upper), offset=rng.randrange(1, 200), m=rng.choice([0, 1]),
            id=rng.randrange(1 << 32)) / body
        return Ether(raw(built)), f"ipv6 hlim={hlim} {what} later-fragment"
    return Ether(raw(Ether(src=src_mac, dst=dst_mac) / ip6 / upper)), f"ipv6 hlim={hlim} {what}"


def _upper_nh(upper: Frame) -> int:
    if isinstance(upper, TCP):
        return 6
    if isinstance(upper, UDP):
        return 17
    return 58


def _from_vm6(rng: random.Random, v: SwitchView, me: Host, src: Host) -> tuple[Frame, str]:
    """IPv6 from a VM port: honest, from its link-local or ::, or forged."""
    upper, what = _ip6_payload(rng, v, me)
    r = rng.random()
    others6 = [h for h in v.hosts + v.gateways if h.ip6]
    if r < 0.55:
        src_ip = me.ip6 or "::"
    elif r < 0.7:
        src_ip, what = _link_local(me.mac), what + " from-link-local"
    elif r < 0.78:
        src_ip, what = "::", what + " from-unspecified"
    elif r < 0.9 and others6:
        src_ip, what = rng.choice(others6).ip6, what + " spoofed-ip6"
    else:
        src_ip, what = "2001:db8:66::66", what + " made-up-ip6"
    dst = rng.choice(others6) if others6 else me
    d = rng.random()
    if d < 0.45:
        dst_mac, dst_ip = dst.mac, dst.ip6 or "2001:db8::1"
    elif d < 0.7 and v.gateways:
        gw = rng.choice(v.gateways)
        dst_mac, dst_ip = gw.mac, dst.ip6 or "2001:db8::1"
    elif d < 0.85:
        dst_mac, dst_ip = "33:33:00:00:00:01", "ff02::1"
    else:
        dst_mac, dst_ip = "33:33:ff:00:00:01", "ff02::1:ff00:1"
    return _ipv6(rng, src.mac, src_ip, dst_mac, dst_ip, upper, what)


def _to_here(rng: random.Random, v: SwitchView) -> tuple[Frame, str]:
    """An IP frame addressed to some VM (as a remote first hop sends it)."""
    src, dst = rng.choice(v.hosts), rng.choice(v.hosts)
    if src.ip6 and dst.ip6 and rng.random() < 0.4:
        layer6, what = _ip6_payload(rng, v)
        return _ipv6(rng, src.mac, src.ip6, dst.mac, dst.ip6, layer6, what)
    layer, what = _ip_payload(rng, v)
    return _ipv4(rng, v, src, dst.mac, dst.ip, layer, what)


def generate_cases(v: SwitchView, n: int, seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    ports = list(v.vm_ports)
    for _ in range(n):
        ct = [rng.choice(CT_STATES) for _ in range(2)]
        r = rng.random()
        if ports and r < 0.6:
            port = rng.choice(ports)
            frame, what = _from_vm(rng, v, port)
            yield Case(v.name, port, frame, ct, what=what)
        elif v.trunks and r < 0.85:
            port = rng.choice(v.trunks)
            frame, what = _to_here(rng, v)
            eth, inner = frame[Ether], frame[Ether].payload
            vlan = rng.choice(v.vlans + [3999])
            label = rng.choice(v.labels + [16, 12345])
            shape = rng.random()
            if shape < 0.7:
                frame = (Ether(src=eth.src, dst=eth.dst) / Dot1Q(vlan=vlan, type=0x8847)
                         / MPLS(label=label, s=1, ttl=64, cos=int(isinstance(inner, IPv6)))
                         / inner)
                what = f"trunk vlan {vlan} mpls {label} {what}"
            elif shape < 0.85:
                frame = Ether(src=eth.src, dst=eth.dst) / Dot1Q(vlan=vlan) / inner
                what = f"trunk vlan {vlan} {what}"
            elif shape < 0.93:
                frame = (Ether(src=eth.src, dst=eth.dst) / Dot1AD(vlan=vlan)
                         / Dot1Q(vlan=vlan, type=0x8847)
                         / MPLS(label=label, s=1, ttl=64, cos=int(isinstance(inner, IPv6)))
                         / inner)
                what = f"trunk qinq {vlan} mpls {label} {what}"
            else:
                what = f"trunk untagged {what}"
            yield Case(v.name, port, frame, ct, what=what)
        elif v.tunnel_port is not None and r < 0.95:
            frame, what = _to_here(rng, v)
            vni = rng.choice(v.vnis + [4242])
            src = rng.choice(v.tunnel_ips + ["192.0.2.99"])
            dst = rng.choice(v.tunnel_ips)
            if rng.random() < 0.2:
                frame, what = _arp(rng, v, rng.choice(v.hosts))
            tunnel = {"tun_id": hex(vni), "tun_src": src, "tun_dst": dst}
            yield Case(v.name, v.tunnel_port, frame, ct, tunnel, f"tunnel vni {vni} {what}")
        else:
            port = rng.choice([77, 4000, 65001])
            frame, what = _to_here(rng, v)
            yield Case(v.name, port, frame, ct, what=f"unknown port {port} {what}")
