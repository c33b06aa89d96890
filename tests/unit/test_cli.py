"""The command line as a user meets it: outputs, JSON shapes, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdnctl.cli import main

ROOT = Path(__file__).resolve().parents[2]
TOPO = str(ROOT / "topologies" / "three-tier.topology.yaml")
POLICY = str(ROOT / "topologies" / "three-tier.policy.yaml")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_accepts_the_example(capsys):
    code, out, _ = run(capsys, "check", "-p", POLICY, "-t", TOPO)
    assert code == 0 and "5 VMs" in out


def test_check_refuses_a_broken_policy_with_file_and_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    text = Path(POLICY).read_text()
    line = text[:text.index("vlan: 20")].count("\n") + 1
    bad.write_text(text.replace("vlan: 20", "vlan: 5000"))
    code, _, err = run(capsys, "check", "-p", str(bad), "-t", TOPO)
    assert code == 2
    assert err == f"{bad}:{line}: segment acme/app: vlan 5000 is out of range 1..4094\n"


def test_compile_json_is_per_switch(capsys):
    code, out, _ = run(capsys, "compile", "-p", POLICY, "-t", TOPO, "--format", "json")
    data = json.loads(out)
    assert code == 0 and [d["switch"] for d in data] == ["hv1", "hv2", "leaf"]
    assert all(f["stage"] and isinstance(f["cookie"], int) for d in data for f in d["flows"])


def test_compile_unknown_switch_is_bad_input(capsys):
    code, _, err = run(capsys, "compile", "-p", POLICY, "-t", TOPO, "--switch", "nope")
    assert code == 2 and "unknown switch" in err


@pytest.mark.parametrize(("src", "dst", "service", "verdict"), [
    ("web1", "app1", "tcp/8080", "allowed"),
    ("app1", "web1", "tcp/8080", "denied"),
    ("app1", "db1", "tcp/5432", "allowed"),
    ("web1", "db1", "tcp/5432", "denied"),
])
def test_explain_json_names_the_deciding_flows(capsys, src, dst, service, verdict):
    code, out, _ = run(capsys, "explain", "-p", POLICY, "-t", TOPO, "--from", src, "--to", dst,
                       "--service", service, "--json")
    data = json.loads(out)
    assert code == 0 and data["verdict"] == verdict == data["promised"]
    assert {"switch", "table", "priority", "owner"} <= set(data["steps"][0])
    acl = [s for s in data["steps"] if s["table"] == "acl" and s["phase"] == "request"]
    assert acl and (acl[0]["owner"].startswith("rule:") if verdict == "allowed"
                    else acl[-1]["actions"] == "drop")


def test_explain_refuses_unknown_vms_and_services(capsys):
    code, _, err = run(capsys, "explain", "-p", POLICY, "-t", TOPO, "--from", "x", "--to",
                       "web1", "--service", "tcp/80")
    assert code == 2 and "unknown VM" in err
    with pytest.raises(SystemExit) as stop:
        main(["explain", "-p", POLICY, "-t", TOPO, "--from", "web1", "--to", "app1",
              "--service", "tcp/99999x"])
    assert stop.value.code == 2
    assert "sdnctl explain: --service: bad service 'tcp/99999x'" in capsys.readouterr().err


def test_plan_reports_what_an_edit_adds_and_removes(capsys, tmp_path):
    new = tmp_path / "new.yaml"
    text = Path(POLICY).read_text()
    text = text.replace("{from: web, to: app, allow: [tcp/8080]}",
                        "{from: web, to: app, allow: [tcp/8080, udp/53]}")
    text = text.replace("{from: app, to: db, allow: [tcp/5432]}",
                        "{from: app, to: db, allow: [icmp]}")
    new.write_text(text)
    code, out, _ = run(capsys, "plan", "-t", TOPO, POLICY, str(new), "--json")
    data = json.loads(out)
    assert code == 0
    assert sorted(map(tuple, data["added"])) == [
        ("app1", "db1", "icmp"), ("web1", "app1", "udp/53"), ("web2", "app1", "udp/53")]
    assert data["removed"] == [["app1", "db1", "tcp/5432"]]
    code, out, _ = run(capsys, "plan", "-t", TOPO, POLICY, POLICY)
    assert code == 0 and out.startswith("no change")


def test_explain_dhcp_walks_the_request_and_says_what_the_vm_is_told(capsys):
    code, out, _ = run(capsys, "explain", "-p", POLICY, "-t", TOPO, "--from", "db1", "--dhcp",
                       "--json")
    doc = json.loads(out)
    assert code == 0 and doc["verdict"] == "answered"
    assert [s["table"] for s in doc["steps"]] == ["port_security", "dhcp"]
    assert doc["lease"]["ip"] == "10.1.30.11" and doc["lease"]["mtu"] == 1492
    code, _, err = run(capsys, "explain", "-p", POLICY, "-t", TOPO, "--from", "db1", "--dhcp",
                       "--to", "web1")
    assert code == 2 and "--dhcp alone" in err


def _closed_port() -> str:
    """An address where nothing listens (bound, then closed: refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


DAEMON_COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["verify"],
    ["check", "-p", POLICY, "-t", TOPO, "--live"],
    ["plan", "-t", TOPO, POLICY],
]


@pytest.mark.parametrize("argv", DAEMON_COMMANDS, ids=lambda a: " ".join(a[:1] + a[-1:]))
def test_a_daemon_that_does_not_answer_is_exit_3_and_one_message(capsys, argv):
    api = _closed_port()
    code, out, err = run(capsys, *argv, "--api", api)
    assert code == 3 and out == ""
    assert err.startswith(f"sdnctl {argv[0]}: the daemon at {api} does not answer (")
    assert "Traceback" not in err and err.count("\n") == 1


def test_a_daemon_that_accepts_but_never_answers_is_exit_3_too(capsys):
    import socket

    with socket.socket() as silent:  # accepts connections (backlog), reads nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        api = f"127.0.0.1:{silent.getsockname()[1]}"
        code, _, err = run(capsys, "plan", "-t", TOPO, POLICY, "--api", api)
    assert code == 3 and "does not answer (timed out)" in err, err


def test_a_daemon_that_refuses_is_exit_1(capsys):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": "a valid API token is required"}')

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = f"127.0.0.1:{server.server_address[1]}"
        for argv in (["status"], ["plan", "-t", TOPO, POLICY]):
            code, _, err = run(capsys, *argv, "--api", api)
            assert code == 1, argv
            assert err.startswith(f"sdnctl {argv[0]}: the daemon at {api} refused: ")
            assert "a valid API token is required" in err
    finally:
        server.shutdown()
        server.server_close()


DUAL = """\
version: 1
tenants:
  t:
    segments:
      web: {vlan: 10, subnet: 10.0.10.0/24, gateway: 10.0.10.1,
            subnet6: "2001:db8:10::/64", gateway6: "2001:db8:10::1"}
      db:  {vlan: 30, subnet: 10.0.30.0/24, gateway: 10.0.30.1,
            subnet6: "2001:db8:30::/64", gateway6: "2001:db8:30::1"}
    groups:
      web: {labels: {tier: web}}
    rules:
      - {from: web, to: any, allow: [tcp/5432], family: ipv6}
vms:
  web1: {tenant: t, segment: web, mac: "02:00:00:00:10:11", ip: 10.0.10.11,
         labels: {tier: web}, host: hv1}
  db1:  {tenant: t, segment: db, mac: "02:00:00:00:30:11", ip: 10.0.30.11, host: hv2}
"""


@pytest.mark.parametrize(("ipv6", "verdict"), [(True, "allowed"), (False, "denied")])
def test_explain_ipv6_walks_neighbour_discovery_and_the_v6_rule(capsys, tmp_path, ipv6,
                                                                verdict):
    policy = tmp_path / "dual.yaml"
    policy.write_text(DUAL)
    argv = ["explain", "-p", str(policy), "-t", TOPO, "--from", "web1", "--to", "db1",
            "--service", "tcp/5432", "--json"] + (["--ipv6"] if ipv6 else [])
    code, out, _ = run(capsys, *argv)
    data = json.loads(out)
    assert code == 0 and data["verdict"] == verdict == data["promised"]
    assert data["family"] == ("ipv6" if ipv6 else "ipv4")
    phases = {s["phase"].split(" ")[0] for s in data["steps"]}
    assert ("nd" in phases) is ipv6 and ("arp" in phases) is not ipv6
