"""`plan --connections`: which established connections an edit would cut."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from sdnctl.cli import main
from sdnctl.policy.load import parse_policy
from sdnctl.verify.cuts import connection_cuts, parse_conntrack

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
POLICY = (TOPOLOGIES / "three-tier.policy.yaml").read_text()
WEB_TO_APP = "      - {from: web, to: app, allow: [tcp/8080]}\n"

# As ovs-appctl dpctl/dump-conntrack prints it (OVS 3.1): web1 -> app1 tracked in
# both zones, app1 -> db1, a closed one, a revoked one, an echo, a stranger.
DUMP = """\
tcp,orig=(src=10.1.10.11,dst=10.1.20.11,sport=40001,dport=8080),reply=(src=10.1.20.11,dst=10.1.10.11,sport=8080,dport=40001),zone=1,protoinfo=(state=ESTABLISHED)
tcp,orig=(src=10.1.10.11,dst=10.1.20.11,sport=40001,dport=8080),reply=(src=10.1.20.11,dst=10.1.10.11,sport=8080,dport=40001),zone=3,protoinfo=(state=ESTABLISHED)
tcp,orig=(src=10.1.20.11,dst=10.1.30.11,sport=40002,dport=5432),reply=(src=10.1.30.11,dst=10.1.20.11,sport=5432,dport=40002),zone=3,protoinfo=(state=ESTABLISHED)
tcp,orig=(src=10.1.10.12,dst=10.1.20.11,sport=40003,dport=8080),reply=(src=10.1.20.11,dst=10.1.10.12,sport=8080,dport=40003),zone=2,protoinfo=(state=TIME_WAIT)
tcp,orig=(src=10.1.10.12,dst=10.1.20.11,sport=40004,dport=8080),reply=(src=10.1.20.11,dst=10.1.10.12,sport=8080,dport=40004),zone=2,mark=1,protoinfo=(state=ESTABLISHED)
icmp,orig=(src=10.1.10.99,dst=10.1.30.11,id=7,type=8,code=0),reply=(src=10.1.30.11,dst=10.1.10.99,id=7,type=0,code=0),zone=5
udp,orig=(src=192.0.2.1,dst=10.1.20.11,sport=53,dport=8080),reply=(src=10.1.20.11,dst=192.0.2.1,sport=8080,dport=53),zone=3
"""


def test_the_dump_is_read_field_by_field():
    conns = parse_conntrack(DUMP + "not an entry\n")
    assert len(conns) == 7
    first, icmp = conns[0], conns[5]
    assert (first.proto, first.src, first.dst, first.sport, first.dport, first.zone,
            first.mark, first.state) == ("tcp", "10.1.10.11", "10.1.20.11", 40001, 8080, 1, 0,
                                         "ESTABLISHED")
    assert (icmp.proto, icmp.dport, icmp.zone, icmp.state) == ("icmp", 8, 5, "")
    assert conns[4].mark == 1


def test_only_live_connections_the_new_policy_denies_are_cut():
    new = parse_policy(POLICY.replace(WEB_TO_APP, ""), "new.yaml")
    cuts = connection_cuts(parse_conntrack(DUMP), new)
    # Once, though tracked in two zones; app1 -> db1 still allowed; the closed and the
    # already revoked ones left out; jump1 -> db1 echo: no rule allows icmp to db.
    assert [c.to_text() for c in cuts] == [
        "jump1 -> db1 icmp (10.1.10.99 -> 10.1.30.11, zone 5)",
        "web1 -> app1 tcp/8080 (10.1.10.11:40001 -> 10.1.20.11:8080, zone 1)",
    ]


def test_nothing_is_cut_when_the_edit_allows_what_runs():
    old = parse_policy(POLICY.replace("allow: [tcp/22]", "allow: [tcp/22, icmp]"), "p.yaml")
    assert connection_cuts(parse_conntrack(DUMP), old) == []


def test_plan_lists_the_cuts_from_a_dump_file(tmp_path, capsys):
    new = tmp_path / "new.yaml"
    new.write_text(POLICY.replace(WEB_TO_APP, ""))
    dump = tmp_path / "hv1.conntrack"
    dump.write_text(DUMP)
    topo = str(TOPOLOGIES / "three-tier.topology.yaml")
    old = str(TOPOLOGIES / "three-tier.policy.yaml")
    assert main(["plan", "-t", topo, old, str(new), "--connections", str(dump)]) == 0
    out = capsys.readouterr().out
    assert "! web1 -> app1 tcp/8080 (10.1.10.11:40001" in out
    assert "2 established connection(s) would be cut" in out
    assert main(["plan", "-t", topo, old, str(new), "--json", "--connections", str(dump)]) == 0
    cut = json.loads(capsys.readouterr().out)["cut"]
    assert {(c["from"], c["to"], c["service"]) for c in cut} == {
        ("web1", "app1", "tcp/8080"), ("jump1", "db1", "icmp")}


def test_an_unreadable_dump_is_bad_input(tmp_path, capsys, monkeypatch):
    topo = str(TOPOLOGIES / "three-tier.topology.yaml")
    old = str(TOPOLOGIES / "three-tier.policy.yaml")
    with pytest.raises(SystemExit) as exc:
        main(["plan", "-t", topo, old, old, "--connections", str(tmp_path / "missing")])
    assert exc.value.code == 2
    assert "missing: No such file or directory" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["plan", "-t", topo, old, old, "--connections", "-"]) == 0
    assert "no established connection would be cut" in capsys.readouterr().out
