"""`ct(..., nat)` through every interpreter of the action vocabulary: OpenFlow both
ways (and the fast encoder's bytes), JSON both ways, and the simulator's conntrack,
whose NAT model is held to OVS by tests/integration/test_sim_nat_ovs.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3_parser as parser

from sdnctl.flowjson import flowset_from_json, lenient_flow
from sdnctl.flows import (
    Ct,
    Flow,
    FlowSet,
    Goto,
    Match,
    Nat,
    Output,
    SetField,
    flowset_to_json,
    render_action_ofctl,
)
from sdnctl.southbound.ofp import Unrepresentable, encoded
from sdnctl.southbound.ofp.actions import (
    action_from_ofp,
    action_to_ofp,
    actions_from_instructions,
    instructions_for,
    normalize_actions,
)
from sdnctl.topology.load import load_topology
from sdnctl.verify.simulate import (
    CT_BITS,
    Conntrack,
    NatClash,
    Simulator,
    Trace,
)

NATS = [
    Ct(zone=7, commit=True, nat=Nat("src", "203.0.113.10")),
    Ct(zone="reg5", table="acl", nat=Nat()),
    Ct(zone=9, commit=True, table="acl", nat=Nat("dst", "10.1.10.11", "10.1.10.14")),
    Ct(zone="reg5", commit=True, mark=3, nat=Nat("src", "198.51.100.1", "198.51.100.9")),
    Ct(zone=4, commit=True, nat=Nat()),
]


@pytest.mark.parametrize("act", NATS, ids=render_action_ofctl)
def test_openflow_round_trip(act: Ct) -> None:
    back = actions_from_instructions(instructions_for([act]))
    assert back == normalize_actions([act]) == (act,)


def test_the_wire_form_is_what_ovs_ofctl_sends() -> None:
    """Flags SRC/DST (1/2) and the range's minimum, its maximum only when it differs;
    plain `nat`: no flags, no range (ovs-ofctl's encoding of the same text)."""
    one = action_to_ofp(NATS[0])
    [nat] = one.actions
    assert isinstance(nat, parser.NXActionNAT)
    assert (nat.flags, nat.range_ipv4_min, nat.range_ipv4_max) == (1, "203.0.113.10", "")
    [nat] = action_to_ofp(NATS[2]).actions
    assert (nat.flags, nat.range_ipv4_min, nat.range_ipv4_max) == (2, "10.1.10.11", "10.1.10.14")
    [nat] = action_to_ofp(NATS[1]).actions
    assert (nat.flags, nat.range_ipv4_min, nat.range_ipv4_max) == (0, "", "")
    mark, nat = action_to_ofp(NATS[3]).actions  # nat last: os-ken pads it only there
    assert mark.key == "ct_mark" and nat.flags == 1


def test_a_one_address_range_keeps_its_spelling() -> None:
    """OVS keeps a maximum equal to the minimum (test_nat_southbound reads it back),
    so `Nat(k, A)` and `Nat(k, A, A)` are different on the wire and each comes back."""
    spelt = Ct(zone=7, commit=True, nat=Nat("src", "203.0.113.10", "203.0.113.10"))
    [nat] = action_to_ofp(spelt).actions
    assert (nat.range_ipv4_min, nat.range_ipv4_max) == ("203.0.113.10", "203.0.113.10")
    assert actions_from_instructions(instructions_for([spelt])) == (spelt,)
    assert normalize_actions([spelt]) == (spelt,)


@pytest.mark.parametrize("nat, why", [
    (parser.NXActionNAT(flags=1 | 4, range_ipv4_min="10.0.0.1"), "persistent"),
    (parser.NXActionNAT(flags=1, range_ipv4_min="10.0.0.1", range_proto_min=1024,
                        range_proto_max=2048), "ports"),
    (parser.NXActionNAT(flags=2, range_ipv6_min="2001:db8::1"), "IPv6"),
    (parser.NXActionNAT(flags=1), "no address"),
    (parser.NXActionNAT(flags=0, range_ipv4_min="10.0.0.1"), "a range without a kind"),
])
def test_nat_the_ir_cannot_say_is_unrepresentable(nat, why: str) -> None:
    ct = parser.NXActionCT(flags=nicira_ext.NX_CT_F_COMMIT, zone_src="", zone_ofs_nbits=5,
                           recirc_table=nicira_ext.NX_CT_RECIRC_NONE, alg=0, actions=[nat])
    with pytest.raises(Unrepresentable):
        action_from_ofp(ct)


def test_a_translation_without_commit_is_unrepresentable() -> None:
    nat = parser.NXActionNAT(flags=1, range_ipv4_min="10.0.0.1")
    ct = parser.NXActionCT(flags=0, zone_src="", zone_ofs_nbits=5,
                           recirc_table=nicira_ext.NX_CT_RECIRC_NONE, alg=0, actions=[nat])
    with pytest.raises(Unrepresentable):
        action_from_ofp(ct)


def _nat_flows() -> list[Flow]:
    return [
        Flow("ct_out", 100 + i, Match.of(eth_type=0x0800, reg5=i), (act,), owner=f"nat:{i}")
        if act.table is not None else
        Flow("acl", 100 + i, Match.of(eth_type=0x0800, reg5=i), (act, Goto("l3_route")),
             owner=f"nat:{i}")
        for i, act in enumerate(NATS)
    ]


def test_fast_encoder_is_os_kens_bytes_for_nat_flows() -> None:
    for f in _nat_flows():
        assert encoded.encode_add(f) == encoded.encode_add_os_ken(f), f


def test_json_round_trip() -> None:
    fs = FlowSet.build("gw", _nat_flows())
    back = flowset_from_json(json.loads(json.dumps(flowset_to_json(fs))))
    assert back.flows == fs.flows
    assert [a for f in back.flows for a in f.actions if isinstance(a, Ct)] == [
        a for f in fs.flows for a in f.actions if isinstance(a, Ct)]


# ---- the simulator's conntrack --------------------------------------------------------

IN, OUT = "10.1.10.11", "198.51.100.7"
SNAT, FIP = "203.0.113.10", "203.0.113.20"


def _udp(src: str, dst: str, sport: int, dport: int) -> dict[str, int | str]:
    return {"eth_type": 0x0800, "ip_proto": 17, "ipv4_src": src, "ipv4_dst": dst,
            "udp_src": sport, "udp_dst": dport}


def _tcp(src: str, dst: str, sport: int, dport: int, flags: int) -> dict[str, int | str]:
    return {"eth_type": 0x0800, "ip_proto": 6, "ipv4_src": src, "ipv4_dst": dst,
            "tcp_src": sport, "tcp_dst": dport, "tcp_flags": flags}


EST_RPL = CT_BITS["est"] | CT_BITS["rpl"] | CT_BITS["trk"]
NEW = CT_BITS["new"] | CT_BITS["trk"]


def test_snat_records_the_translation_and_finds_replies_translated() -> None:
    ct = Conntrack()
    out = _tcp(IN, OUT, 40000, 443, 0x02)
    ct.commit("gw", 5, out, nat=Nat("src", SNAT, "203.0.113.12"))
    assert ct.translation("gw", 5, out) == {"ipv4_src": SNAT}  # the range's first address
    reply = _tcp(OUT, SNAT, 443, 40000, 0x12)
    assert ct.lookup("gw", 5, reply) == EST_RPL
    assert ct.translation("gw", 5, reply) == {"ipv4_dst": IN}
    # The reply as if untranslated belongs to no connection: OVS calls a SYN-ACK +inv.
    assert ct.lookup("gw", 5, _tcp(OUT, IN, 443, 40000, 0x12)) == CT_BITS["inv"] | CT_BITS["trk"]
    # Conntrack is per zone.
    assert ct.lookup("gw", 6, reply) == CT_BITS["inv"] | CT_BITS["trk"]
    assert ct.translation("gw", 6, reply) == {}


def test_dnat_translates_originals_and_reverses_replies() -> None:
    ct = Conntrack()
    first = _udp(OUT, FIP, 5353, 53)
    ct.commit("gw", 5, first, nat=Nat("dst", IN))
    assert ct.translation("gw", 5, first) == {"ipv4_dst": IN}
    assert ct.lookup("gw", 5, first) == NEW  # no reply yet: UDP stays +new
    reply = _udp(IN, OUT, 53, 5353)
    assert ct.lookup("gw", 5, reply) == EST_RPL
    assert ct.translation("gw", 5, reply) == {"ipv4_src": FIP}


def test_a_commit_with_nat_on_a_committed_connection_changes_nothing() -> None:
    ct = Conntrack()
    pkt = _udp(IN, OUT, 5000, 53)
    ct.commit("gw", 5, pkt)
    ct.commit("gw", 5, pkt, nat=Nat("src", SNAT))
    assert ct.translation("gw", 5, pkt) == {}
    ct2 = Conntrack()
    ct2.commit("gw", 5, pkt, nat=Nat("src", SNAT))
    ct2.commit("gw", 5, pkt, nat=Nat("src", "203.0.113.99"))
    assert ct2.translation("gw", 5, pkt) == {"ipv4_src": SNAT}


def test_a_clash_is_refused_rather_than_guessed() -> None:
    ct = Conntrack()
    ct.commit("gw", 5, _udp("10.1.10.11", OUT, 5000, 53), nat=Nat("src", SNAT))
    with pytest.raises(NatClash):
        ct.commit("gw", 5, _udp("10.1.10.12", OUT, 5000, 53), nat=Nat("src", SNAT))
    ct.commit("gw", 5, _udp("10.1.10.12", OUT, 5001, 53), nat=Nat("src", SNAT))  # no clash


TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "single.topology.yaml"


def _gateway(no_table: bool) -> Simulator:
    """Port 1 inside, port 2 outside: SNAT going out, replies de-NATed coming in."""
    z = 11
    out_ct = (Ct(zone=z, commit=True, nat=Nat("src", SNAT)) if no_table
              else Ct(zone=z, commit=True, table="acl", nat=Nat("src", SNAT)))
    flows = [
        lenient_flow("port_security", 10, Match.of(in_port=1, eth_type=0x0800),
                     (out_ct, Goto("acl")) if no_table else (out_ct,), "t", 1),
        lenient_flow("port_security", 10, Match.of(in_port=2, eth_type=0x0800),
                     (Ct(zone=z, table="acl", nat=Nat()),), "t", 1),
        # The acl tells what the pipeline saw: port 3 if it saw the SNAT address.
        Flow("acl", 30, Match.of(eth_type=0x0800, ipv4_src=SNAT), (Output(3),)),
        Flow("acl", 20, Match.of(eth_type=0x0800, ct_state="+est+rpl+trk"), (Output(1),)),
        Flow("acl", 10, Match.of(eth_type=0x0800), (Output(2),)),
    ]
    return Simulator({"hv1": FlowSet.of("hv1", flows)}, load_topology(TOPOLOGY))


@pytest.mark.parametrize("no_table", [False, True], ids=["table", "no-table"])
def test_a_translated_packet_leaves_translated(no_table: bool) -> None:
    sim = _gateway(no_table)
    ct = Conntrack()
    out = sim._run_switch("hv1", 1, _udp(IN, OUT, 5000, 53), ct, Trace())
    # With `table` the pipeline sees the translation (port 3); without it, OVS goes
    # on matching the header from before it (port 2) but sends the translated one.
    [(port, pkt)] = out
    assert port == (2 if no_table else 3)
    assert pkt["ipv4_src"] == SNAT and not any(k.startswith("nat:") for k in pkt)
    back = sim._run_switch("hv1", 2, _udp(OUT, SNAT, 53, 5000), ct, Trace())
    assert [(p, q["ipv4_dst"]) for p, q in back] == [(1, IN)]


def test_a_write_after_the_translation_wins() -> None:
    flows = [Flow("port_security", 10, Match.of(in_port=1, eth_type=0x0800),
                  (Ct(zone=3, commit=True, nat=Nat("src", SNAT)),
                   SetField("ipv4_src", "192.0.2.1"), Output(2)))]
    sim = Simulator({"hv1": FlowSet.build("hv1", flows)}, load_topology(TOPOLOGY))
    [(_, pkt)] = sim._run_switch("hv1", 1, _udp(IN, OUT, 5000, 53), Conntrack(), Trace())
    assert pkt["ipv4_src"] == "192.0.2.1"


def test_after_a_ct_without_table_the_packet_is_untracked() -> None:
    """OVS's ofproto/trace: "Sets the packet to an untracked state, and clears all the
    conntrack fields" after ct without table; a later +trk match misses."""
    flows = [
        lenient_flow("port_security", 10, Match.of(in_port=1, eth_type=0x0800),
                     (Ct(zone=3, table="acl"),), "t", 1),
        lenient_flow("acl", 10, Match.of(eth_type=0x0800, ct_state="+new+trk"),
                     (Ct(zone=3, commit=True), Goto("l3_route")), "t", 2),
        Flow("l3_route", 20, Match.of(eth_type=0x0800, ct_state="+trk"), (Output(4),)),
        Flow("l3_route", 10, Match.of(eth_type=0x0800, ct_state="-trk"), (Output(2),)),
    ]
    sim = Simulator({"hv1": FlowSet.of("hv1", flows)}, load_topology(TOPOLOGY))
    out = sim._run_switch("hv1", 1, _udp(IN, OUT, 5000, 53), Conntrack(), Trace())
    assert [port for port, _ in out] == [2]


def test_a_translated_connections_mark_is_read_on_its_replies() -> None:
    """A revoked connection (ct_mark 1) must be found revoked from its reply too,
    which only its translated reply tuple names."""
    ct = Conntrack()
    ct.commit("gw", 5, _udp(IN, OUT, 5000, 53), mark=1, nat=Nat("src", SNAT))
    assert ct.mark("gw", 5, _udp(OUT, SNAT, 53, 5000)) == 1
    assert ct.mark("gw", 5, _udp(OUT, IN, 53, 5000)) == 0  # no such connection
    plain = Conntrack()
    plain.commit("gw", 5, _udp(IN, OUT, 5000, 53), mark=1)
    assert plain.mark("gw", 5, _udp(OUT, IN, 53, 5000)) == 1
