"""Which captured frames leaked: the verdict on what reached a victim.

A frame that reached victim V leaked when either
- it carries the attack's marker (every attack frame does where it has room, and
  no attack frame is one the policy allows), or
- the policy does not explain it: it is not IPv4 or ARP; or it is IPv4 whose
  sender is not a real VM of V's tenant as V would see it (its own MAC and IP on
  V's segment, or V's gateway MAC and a routed VM's IP); or `reach()` allows
  neither it nor the reverse connection it could answer; or it is a fragment;
  or ARP that is not a true answer (a VM or gateway of V's segment) addressed to V;
  or a DHCP answer that is not the policy's (from V's gateway MAC and address,
  UDP 67 -> 68, handing out V's own address or none) to V.
  IPv6 likewise: a packet to V's `ip6` from a real VM of V's tenant as V would see
  it (same segment: its MAC and `ip6`; routed: V's router MAC and a VM's `ip6` of a
  segment with a gateway6) that `reach(..., family=6)` allows either way, with no
  extension header (no legitimate sender here uses one); or the controller's
  answers to V's own solicitations: a router advertisement from V's router (its
  MAC and link-local address, V's prefix) and a neighbour advertisement whose
  target is-at the target's true MAC. Nothing else in IPv6 (no fragment, no
  DHCPv6, no other ICMPv6 but echo) is explained.

The second rule catches frames with no room for a marker (truncated, random
bytes) without counting the lab's own allowed traffic as leaks. Pure: bytes in.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_address

from sdnctl.lab.attacks.scene import Scene, VmAddr
from sdnctl.policy.model import Policy, Proto, Service
from sdnctl.verify.semantics import reach

ETH_IP, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY = 128, 129
ROUTER_ADVERT, NEIGHBOR_ADVERT = 134, 136
ND_HOP_LIMIT = 255
OPT_SOURCE_LL, OPT_TARGET_LL, OPT_PREFIX, OPT_MTU = 1, 2, 3, 5
ALL_NODES = "ff02::1"


@dataclass(frozen=True, slots=True)
class Verdict:
    leaks: tuple[str, ...]  # one line per leaked frame
    canaries: int  # canary pings seen (proof that the capture was listening)


def judge_frames(frames: Iterable[bytes], victim: str, scene: Scene, policy: Policy,
                 marker: bytes, canary: bytes) -> Verdict:
    leaks, canaries = [], 0
    v = scene.vm(victim)
    for frame in frames:
        if canary in frame and explain(frame, v, scene, policy):
            canaries += 1
        elif marker in frame or not explain(frame, v, scene, policy):
            leaks.append(describe(frame) + (" [attack marker]" if marker in frame else ""))
    return Verdict(tuple(leaks), canaries)


def explain(frame: bytes, v: VmAddr, scene: Scene, policy: Policy) -> bool:
    """True when the policy allows this frame to reach V (see the module docstring)."""
    if len(frame) < 14:
        return False
    ethertype = struct.unpack("!H", frame[12:14])[0]
    if ethertype == ETH_ARP:
        return _true_arp_answer(frame, v, scene)
    if ethertype == ETH_IP:
        return _allowed_ipv4(frame, v, scene, policy)
    if ethertype == ETH_IPV6:
        return _allowed_ipv6(frame, v, scene, policy)
    return False


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _ip(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def _true_arp_answer(frame: bytes, v: VmAddr, scene: Scene) -> bool:
    if len(frame) < 42:
        return False
    op = struct.unpack("!H", frame[20:22])[0]
    sha, spa, tha, tpa = frame[22:28], frame[28:32], frame[32:38], frame[38:42]
    if op != 2 or _ip(tpa) != v.ip or _mac(tha) != v.mac or frame[6:12] != sha:
        return False
    truth = {a.ip: a.mac for a in scene.vms.values() if a.vlan == v.vlan}
    if v.gateway_ip and v.gateway_mac:
        truth[v.gateway_ip] = v.gateway_mac
    return truth.get(_ip(spa)) == _mac(sha)


def _sender(eth_src: str, ip_src: str, v: VmAddr, scene: Scene) -> VmAddr | None:
    """The VM that sent this, as V sees it; None if no real VM could have."""
    for a in scene.vms.values():
        if a.tenant != v.tenant or a.ip != ip_src or a.name == v.name:
            continue
        if a.vlan == v.vlan and eth_src == a.mac:
            return a
        if a.vlan != v.vlan and a.gateway_mac and v.gateway_mac and eth_src == v.gateway_mac:
            return a
    return None


def _allowed_ipv4(frame: bytes, v: VmAddr, scene: Scene, policy: Policy) -> bool:
    ip = frame[14:]
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return False
    ihl = (ip[0] & 0x0F) * 4
    flags_frag = struct.unpack("!H", ip[6:8])[0]
    if flags_frag & 0x3FFF:  # more-fragments or an offset: a fragment
        return False
    proto, src, dst = ip[9], _ip(ip[12:16]), _ip(ip[16:20])
    if proto == 17 and _policy_dhcp_answer(frame, ihl, src, dst, v):
        return True
    a = _sender(_mac(frame[6:12]), src, v, scene)
    if dst != v.ip or a is None or _mac(frame[0:6]) != v.mac:
        return False
    l4 = ip[ihl:]
    if proto in (6, 17) and len(l4) >= 4:
        sport, dport = struct.unpack("!HH", l4[:4])
        kind = Proto.TCP if proto == 6 else Proto.UDP
        return (reach(policy, a.name, v.name, Service(kind, dport, dport))
                or reach(policy, v.name, a.name, Service(kind, sport, sport)))
    if proto == 1 and l4:
        if l4[0] == ICMP_ECHO_REQUEST:
            return reach(policy, a.name, v.name, Service(Proto.ICMP))
        if l4[0] == ICMP_ECHO_REPLY:
            return reach(policy, v.name, a.name, Service(Proto.ICMP))
    return False


def _policy_dhcp_answer(frame: bytes, ihl: int, src: str, dst: str, v: VmAddr) -> bool:
    """The controller's answer to V's own DHCP client (the lab's DHCP witnesses)."""
    bootp = frame[14 + ihl + 8:]
    if v.gateway_mac is None or len(bootp) < 20 or frame[14 + ihl:14 + ihl + 4] != bytes(
            (0, 67, 0, 68)):
        return False
    return (_mac(frame[6:12]) == v.gateway_mac and src == v.gateway_ip
            and dst in (v.ip, "255.255.255.255")
            and _mac(frame[0:6]) in (v.mac, "ff:ff:ff:ff:ff:ff")
            and _ip(bootp[16:20]) in (v.ip, "0.0.0.0"))


def truth6(v: VmAddr, scene: Scene) -> dict[str, str]:
    """IPv6 address -> MAC that V may rightly believe: its segment's VMs (their
    addresses; a VM's link-local is never answered for), its gateway6 and router."""
    truth = {str(ip_address(a.ip6)): a.mac for a in scene.vms.values()
             if a.ip6 and a.tenant == v.tenant and a.vlan == v.vlan and a.name != v.name}
    for ip in (v.gateway6, v.router6):
        if ip and v.router_mac:
            truth[str(ip_address(ip))] = v.router_mac
    return truth


def _sender6(eth_src: str, ip_src: str, v: VmAddr, scene: Scene) -> VmAddr | None:
    """The VM that sent this IPv6 packet, as V sees it; None if no real VM could have."""
    for a in scene.vms.values():
        if a.tenant != v.tenant or a.ip6 is None or a.name == v.name:
            continue
        if str(ip_address(a.ip6)) != ip_src:
            continue
        if a.vlan == v.vlan and eth_src == a.mac:
            return a
        if a.vlan != v.vlan and a.gateway6 and v.gateway6 and eth_src == v.router_mac:
            return a
    return None


def _allowed_ipv6(frame: bytes, v: VmAddr, scene: Scene, policy: Policy) -> bool:
    ip = frame[14:]
    if len(ip) < 40 or ip[0] >> 4 != 6 or v.ip6 is None:
        return False
    next_header, hop_limit = ip[6], ip[7]
    src, dst = str(ip_address(ip[8:24])), str(ip_address(ip[24:40]))
    eth_dst, eth_src = _mac(frame[0:6]), _mac(frame[6:12])
    l4 = ip[40:]
    if next_header == 58 and l4 and l4[0] in (ROUTER_ADVERT, NEIGHBOR_ADVERT):
        return (eth_dst == v.mac and hop_limit == ND_HOP_LIMIT
                and _policy_nd_answer(l4, eth_src, src, dst, v, scene))
    a = _sender6(eth_src, src, v, scene)
    if dst != str(ip_address(v.ip6)) or a is None or eth_dst != v.mac:
        return False
    if next_header in (6, 17) and len(l4) >= 4:
        sport, dport = struct.unpack("!HH", l4[:4])
        kind = Proto.TCP if next_header == 6 else Proto.UDP
        return (reach(policy, a.name, v.name, Service(kind, dport, dport), 6)
                or reach(policy, v.name, a.name, Service(kind, sport, sport), 6))
    if next_header == 58 and l4:
        if l4[0] == ICMP6_ECHO_REQUEST:
            return reach(policy, a.name, v.name, Service(Proto.ICMP), 6)
        if l4[0] == ICMP6_ECHO_REPLY:
            return reach(policy, v.name, a.name, Service(Proto.ICMP), 6)
    return False  # an extension header, a fragment, any other ICMPv6


def _nd_options(options: bytes) -> list[tuple[int, bytes]]:
    """(type, body) of each ND option; [] for malformed ones (length 0 or overrun)."""
    found, i = [], 0
    while i + 2 <= len(options):
        length = options[i + 1] * 8
        if length == 0 or i + length > len(options):
            return []
        found.append((options[i], options[i + 2:i + length]))
        i += length
    return found


def _policy_nd_answer(icmp: bytes, eth_src: str, src: str, dst: str, v: VmAddr,
                      scene: Scene) -> bool:
    """The controller's router advertisement or neighbour advertisement to V."""
    if icmp[0] == ROUTER_ADVERT:
        # Exactly what the controller says: its MAC, the segment's MTU and prefix.
        options = _nd_options(icmp[16:])
        said = {kind: body for kind, body in options}
        return (eth_src == v.router_mac and src == v.router6 and v.subnet6 is not None
                and dst in (v.link_local, ALL_NODES) and len(said) == len(options) == 3
                and _mac(said.get(OPT_SOURCE_LL, b"")[:6]) == v.router_mac
                and said.get(OPT_MTU, b"")[2:6] == (v.mtu6 or 0).to_bytes(4, "big")
                and str(ip_address(said.get(OPT_PREFIX, bytes(30))[14:30]))
                == v.subnet6.split("/")[0])
    if len(icmp) < 24:
        return False
    target = str(ip_address(icmp[8:24]))
    told = [_mac(body[:6]) for kind, body in _nd_options(icmp[24:]) if kind == OPT_TARGET_LL]
    return (truth6(v, scene).get(target) == eth_src and src == target and told == [eth_src]
            and dst in (str(ip_address(v.ip6 or "::")), v.link_local))


def describe(frame: bytes) -> str:
    """One line about a frame, enough to see what got through."""
    if len(frame) < 14:
        return f"{len(frame)}-byte runt {frame.hex()}"
    head = f"{_mac(frame[6:12])} > {_mac(frame[0:6])}"
    ethertype = struct.unpack("!H", frame[12:14])[0]
    if ethertype == ETH_IP and len(frame) >= 34:
        ip = frame[14:]
        text = f"{head} IPv4 {_ip(ip[12:16])} > {_ip(ip[16:20])} proto {ip[9]} ttl {ip[8]}"
        l4 = ip[(ip[0] & 0x0F) * 4:]
        if ip[9] in (6, 17) and len(l4) >= 4:
            text += " ports {}>{}".format(*struct.unpack("!HH", l4[:4]))
        if ip[9] == 6 and len(l4) >= 14:
            text += f" flags 0x{l4[13]:02x}"
        if ip[9] == 1 and len(l4) >= 2:
            text += f" icmp {l4[0]}/{l4[1]}"
        return text + f" ({len(frame)} B)"
    if ethertype == ETH_IPV6 and len(frame) >= 54:
        ip = frame[14:]
        text = (f"{head} IPv6 {ip_address(ip[8:24])} > {ip_address(ip[24:40])} next header"
                f" {ip[6]} hop limit {ip[7]}")
        if ip[6] == 58 and len(ip) >= 42:
            text += f" icmp6 {ip[40]}/{ip[41]}"
        if ip[6] in (6, 17) and len(ip) >= 44:
            text += " ports {}>{}".format(*struct.unpack("!HH", ip[40:44]))
        return text + f" ({len(frame)} B)"
    if ethertype == ETH_ARP and len(frame) >= 42:
        op = struct.unpack("!H", frame[20:22])[0]
        return (f"{head} ARP op {op} {_ip(frame[28:32])} is-at {_mac(frame[22:28])}"
                f" for {_ip(frame[38:42])}")
    return f"{head} ethertype 0x{ethertype:04x} ({len(frame)} B)"
