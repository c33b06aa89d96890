"""Real packets through a real netdev bridge, for holding the simulator's NAT to OVS.

`ofproto/trace` cannot show NAT faithfully (tests/integration/test_sim_nat_ovs.py
says what it shows), so these pieces run real frames instead:

- `NatBridge`: a netdev bridge whose OpenFlow ports are veth pairs; the far ends sit
  in one namespace of the run's own, with nothing configured on them (no address,
  no route), so the kernel there only lets the frames be read.
- `Taps`: a raw (AF_PACKET) socket on each far end, opened inside that namespace:
  every frame the bridge outputs on port N is read from tap N.
- `OfSession`: OpenFlow 1.3 on the bridge's management socket, sending packet-outs
  that run the pipeline from table 0 with a given in_port (what a frame arriving on
  that port gets, through the datapath's real conntrack), in order.

Each frame carries a tag in its payload (`tagged`), so a frame read from a tap is
matched to the frame sent whatever the order of reading.
"""

from __future__ import annotations

import select
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_parser, ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from pyroute2 import netns
from scapy.layers.l2 import Ether
from scapy.packet import raw

from sdnctl.lab.names import unique_name
from sdnctl.lab.session import LabSession

ETH_P_ALL = 0x0003
TAG = b"NATSIM"  # then 4 bytes of frame number


def sh(*cmd: str) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed: {res.stderr.strip()}")
    return res.stdout


def tag_of(frame: bytes) -> int | None:
    at = frame.find(TAG)
    if at < 0:
        return None
    return int(struct.unpack_from("!I", frame, at + len(TAG))[0])


def tagged(n: int) -> bytes:
    return TAG + struct.pack("!I", n)


@dataclass
class NatBridge:
    """A netdev bridge with veth ports `ports`, their far ends in namespace `ns`."""

    cleanup: LabSession
    ports: list[int]
    name: str = ""
    ns: str = ""
    far: dict[int, str] = field(default_factory=dict)  # OpenFlow port -> far end's name

    def __post_init__(self) -> None:
        self.name = self.cleanup.bridge(unique_name())
        sh("ovs-vsctl", "add-br", self.name, "--", "set", "bridge", self.name,
           "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13")
        assert sh("ovs-vsctl", "get", "bridge", self.name, "datapath_type").strip() == "netdev"
        self.ns = self.cleanup.netns(unique_name())
        sh("ip", "netns", "add", self.ns)
        for port in self.ports:
            near = self.cleanup.veth(unique_name())
            far = f"p{port}"
            sh("ip", "link", "add", near, "type", "veth", "peer", "name", unique_name())
            peer = sh("ip", "-o", "link", "show", near).split("@")[1].split(":")[0]
            sh("ip", "link", "set", peer, "netns", self.ns)
            sh("ip", "-n", self.ns, "link", "set", peer, "name", far)
            sh("ip", "-n", self.ns, "link", "set", far, "up")
            # No IPv6 either: the namespace must send nothing of its own (no DAD, no MLD).
            sh("ip", "netns", "exec", self.ns, "sysctl", "-qw",
               f"net.ipv6.conf.{far}.disable_ipv6=1")
            sh("ip", "link", "set", near, "up")
            self.cleanup.port(self.name, near)
            sh("ovs-vsctl", "add-port", self.name, near, "--", "set", "interface", near,
               f"ofport_request={port}")
            self.far[port] = far

    def add_flows(self, lines: list[str]) -> None:
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flows", self.name, "-"],
                       input="\n".join(lines) + "\n", check=True, capture_output=True,
                       text=True)

    def ofctl(self, *args: str) -> str:
        return sh("ovs-ofctl", "-O", "OpenFlow13", args[0], self.name, *args[1:])


SOL_PACKET, PACKET_AUXDATA = 263, 8
# struct tpacket_auxdata: status, len, snaplen, mac, net, vlan_tci, vlan_tpid
_AUXDATA = struct.Struct("=IIIHHHH")
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40


def _with_vlan_tag(data: bytes, ancillary: list[tuple[int, int, bytes]]) -> bytes:
    """The frame as it was on the wire: Linux takes the outer VLAN tag off every
    frame it receives and hands it to a raw socket beside the frame (auxdata)."""
    for level, kind, raw_aux in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA:
            status, _, _, _, _, tci, tpid = _AUXDATA.unpack_from(raw_aux)
            if status & TP_STATUS_VLAN_VALID:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                return data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
    return data


class Taps:
    """A raw socket on each far end of a `NatBridge`: what the bridge output where."""

    def __init__(self, bridge: NatBridge) -> None:
        self.socks: dict[int, socket.socket] = {}
        netns.pushns(bridge.ns)
        try:
            for port, far in bridge.far.items():
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)
                s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
                s.bind((far, 0))
                s.setblocking(False)
                self.socks[port] = s
        finally:
            netns.popns()

    def drain(self, quiet: float = 0.3) -> list[tuple[int, bytes]]:
        """Every frame read until nothing came for `quiet` seconds: (port, frame)."""
        got: list[tuple[int, bytes]] = []
        by_fd = {s.fileno(): port for port, s in self.socks.items()}
        while True:
            ready, _, _ = select.select(list(self.socks.values()), [], [], quiet)
            if not ready:
                return got
            for s in ready:
                while True:
                    try:
                        data, anc, _, _ = s.recvmsg(65535, socket.CMSG_SPACE(_AUXDATA.size))
                    except BlockingIOError:
                        break
                    got.append((by_fd[s.fileno()], _with_vlan_tag(data, anc)))

    def close(self) -> None:
        for s in self.socks.values():
            s.close()


class OfSession:
    """OpenFlow 1.3 on a bridge's unix management socket (what ovs-ofctl uses)."""

    def __init__(self, bridge: str) -> None:
        self.dp = ofproto_protocol.ProtocolDesc(version=ofp.OFP_VERSION)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(f"/var/run/openvswitch/{bridge}.mgmt")
        self.sock.settimeout(20)
        self.xid = 0
        self.send(parser.OFPHello(self.dp))
        assert isinstance(self.recv(), parser.OFPHello)

    def send(self, msg: Any) -> None:
        self.xid += 1
        msg.set_xid(self.xid)
        msg.serialize()
        self.sock.sendall(bytes(msg.buf))

    def recv(self) -> Any:
        head = self._read(8)
        version, msg_type, length, xid = struct.unpack("!BBHI", head)
        return ofproto_parser.msg(self.dp, version, msg_type, length, xid,
                                  head + self._read(length - 8))

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("the switch closed the connection")
            buf += chunk
        return buf

    def packet_in(self, in_port: int, frame: bytes) -> None:
        """Run `frame` through the pipeline from table 0 as if it came in on `in_port`."""
        self.send(parser.OFPPacketOut(
            self.dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
            actions=[parser.OFPActionOutput(ofp.OFPP_TABLE)], data=frame))

    def barrier(self) -> None:
        """Wait until the switch has done everything sent before; raise on an error."""
        self.send(parser.OFPBarrierRequest(self.dp))
        while True:
            msg = self.recv()
            if isinstance(msg, parser.OFPErrorMsg):
                raise RuntimeError(f"switch error type {msg.type} code {msg.code}")
            if isinstance(msg, parser.OFPBarrierReply):
                return

    def close(self) -> None:
        self.sock.close()


def send_and_read(session: OfSession, taps: Taps, frames: list[tuple[int, Any]]
                  ) -> dict[int, list[tuple[int, Ether]]]:
    """Send each (in_port, scapy frame), frame i tagged i, in order; then read every
    tap: frame number -> [(port output to, frame as read)] (empty: dropped)."""
    for i, (port, frame) in enumerate(frames):
        session.packet_in(port, raw(frame / tagged(i)))
        if i % 64 == 63:  # keep the socket buffers and the switch's queue short
            session.barrier()
    session.barrier()
    time.sleep(0.05)
    out: dict[int, list[tuple[int, Ether]]] = {i: [] for i in range(len(frames))}
    for port, data in taps.drain():
        n = tag_of(data)
        if n is not None and n in out:
            out[n].append((port, Ether(data)))
    return out
