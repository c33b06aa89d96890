"""`sdnctl vm`: argument errors, policy refusals (before anything on the machine is
touched, so no root needed) and the interface-name scheme."""

from __future__ import annotations

import re

import pytest

from sdnctl.cli import main
from sdnctl.southbound.vmwire import GUEST_IFNAMES, host_ifnames, vm_key

TOPOLOGY = """\
version: 1
switches:
  hv1: {dpid: 1, role: hypervisor}
  leaf: {dpid: 16, role: fabric}
links:
  - {a: "hv1:10", b: "leaf:1"}
"""

POLICY = """\
version: 1
tenants:
  t1:
    segments:
      web: {vlan: 10, subnet: 10.1.10.0/24, gateway: 10.1.10.1}
vms:
  web1: {tenant: t1, segment: web, mac: "02:00:00:00:10:11", ip: 10.1.10.11, host: hv1}
  loose: {tenant: t1, segment: web, mac: "02:00:00:00:10:12", ip: 10.1.10.12}
"""

# If a refusal were to reach the system, this OVSDB would fail with exit 1, not 2.
NO_OVSDB = "unix:/nonexistent/sdnctl-test.sock"


@pytest.fixture
def files(tmp_path) -> list[str]:
    (tmp_path / "t.yaml").write_text(TOPOLOGY)
    (tmp_path / "p.yaml").write_text(POLICY)
    return ["-p", str(tmp_path / "p.yaml"), "-t", str(tmp_path / "t.yaml"), "--ovsdb", NO_OVSDB]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [
    ["vm"],  # no subcommand
    ["vm", "plug", "web1"],  # no -p / -t
    ["vm", "plug", "web1", "-p", "p", "-t", "t", "--netns", "ns1", "--tap"],
    ["vm", "plug", "web1", "-p", "p", "-t", "t", "--netns", "a/b"],
    ["vm", "plug", "web1", "-p", "p", "-t", "t", "--mtu", "20"],
    ["vm", "plug", "web1", "-p", "p", "-t", "t", "--mtu", "jumbo"],
    ["vm", "migrate", "web1", "-p", "p", "-t", "t"],  # no --to
    ["vm", "unplug", "web1", "-p", "p", "-t", "t", "--netns", "ns1"],  # unplug finds it
    ["vm", "teleport", "web1"],
])
def test_argument_errors_exit_2(capsys, argv) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["plug", "nope", "--netns", "x"], "unknown VM 'nope' (known: loose, web1)"),
    (["unplug", "nope"], "unknown VM 'nope'"),
    (["migrate", "nope", "--to", "hv1"], "unknown VM 'nope'"),
    (["plug", "web1", "--host", "hv9"], "unknown switch 'hv9' (known: hv1, leaf)"),
    (["migrate", "web1", "--to", "hv9"], "unknown switch 'hv9'"),
    (["plug", "web1", "--host", "leaf", "--tap"],
     "switch 'leaf' is a fabric switch, not a hypervisor"),
    (["migrate", "web1", "--to", "leaf"], "not a hypervisor"),
    (["plug", "loose", "--netns", "x"], "vm loose has no host: give --host SWITCH"),
])
def test_what_the_policy_does_not_know_is_refused_with_exit_2(capsys, files, argv, message):
    code, out, err = run(capsys, "vm", *argv, *files)
    assert code == 2 and out == ""
    assert err.startswith(f"sdnctl vm {argv[0]}: ") and message in err
    assert err.count("\n") == 1


def test_a_broken_policy_is_refused_with_file_and_line(capsys, files, tmp_path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY.replace("vlan: 10", "vlan: 5000"))
    code, _, err = run(capsys, "vm", "plug", "web1", "--tap", *files)
    assert code == 2 and err.startswith(f"{tmp_path / 'p.yaml'}:5: ")


def test_an_unreachable_ovsdb_is_a_failure_not_a_refusal(capsys, files) -> None:
    code, out, err = run(capsys, "vm", "unplug", "web1", *files)
    assert code == 1 and out == ""
    assert err.startswith("sdnctl vm unplug: ") and NO_OVSDB in err


@pytest.mark.parametrize("name", ["web1", "a", "db-primary", "x_y-z", "0123456789"])
def test_short_plain_names_are_their_own_key(name) -> None:
    assert vm_key(name) == name
    assert host_ifnames(name) == (f"vm-{name}", f"vm-{name}.m")


@pytest.mark.parametrize("name", [
    "database-primary-01", "a very long vm name", "web.1", "ünïcode", "x" * 200, "a/b", "a:b",
])
def test_other_names_hash_into_15_characters(name) -> None:
    slot0, slot1 = host_ifnames(name)
    assert (slot0, slot1) == host_ifnames(name)  # stable
    assert len(slot0.encode()) <= 15 and len(slot1.encode()) <= 15
    assert slot0 != slot1
    # What Linux refuses in an interface name never appears; a '.' marks a hashed key.
    assert re.fullmatch(r"vm-[A-Za-z0-9_-]{0,4}\.[0-9a-f]{5}(\.m)?", slot0) and "." in vm_key(name)


def test_names_do_not_collide() -> None:
    names = ["web1", "web1.", "web1 ", "Web1", "database-primary-01", "database-primary-02",
             "0123456789", "01234567890", "a", "a.m", "vm-a"]
    seen = [n for name in names for n in host_ifnames(name)]
    assert len(seen) == len(set(seen))
    assert GUEST_IFNAMES == ("eth0", "eth1")


def test_help_documents_the_subcommands_and_the_names(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["vm", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    for words in ("plug", "unplug", "migrate", "vm-NAME.m", "eth0", "one OVSDB transaction",
                  "Exit codes"):
        assert words in out
