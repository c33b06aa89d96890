"""The web dashboard in a real headless browser (Debian's chromium) against the real
daemon programming real OVS bridges: the page loads, shows the lab's switches and
VMs, its reachability matrix is what the policy semantics and `sdnctl plan`'s
simulation promise, a cell's explanation opens, the last edit shows the
reachability it added and removed, and nothing but the page loads without the token.

The browser runs with `--dump-dom`: the page's script has run (the virtual-time
budget waits for its fetches), and the DOM it built is parsed here by the `data-`
attributes the page puts on what it draws."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import pytest
from daemon_cmd import start

from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.client.api import get_status, wait_policy, wait_programmed
from sdnctl.compile.compiler import compile_network
from sdnctl.policy.load import parse_policy
from sdnctl.topology.load import parse_topology
from sdnctl.topology.model import PortRef
from sdnctl.verify.reach import reachability
from sdnctl.verify.semantics import probe_services, reach

pytestmark = [pytest.mark.ovs, pytest.mark.needs("chromium")]

TOKEN = "dashboard-token-7c1e0b"
VM_PORTS = {"w1": ("hv1", 100), "w2": ("hv2", 100), "d1": ("hv2", 101), "x1": ("hv1", 101)}

POLICY = """\
version: 1
tenants:
  t1:
    default: deny
    segments:
      web: {vlan: 10, subnet: 10.9.10.0/24, gateway: 10.9.10.1}
      db:  {vlan: 20, subnet: 10.9.20.0/24, gateway: 10.9.20.1}
    groups:
      web: {labels: {tier: web}}
      db:  {labels: {tier: db}}
    rules:
      - {from: any, to: web, allow: [tcp/80, icmp]}
      - {from: web, to: db, allow: [tcp/5432]}
  t2:
    default: allow
    segments:
      lab: {vlan: 30, subnet: 10.9.30.0/24}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:09:10:11", ip: 10.9.10.11,
       labels: {tier: web}, host: hv1}
  w2: {tenant: t1, segment: web, mac: "02:00:00:09:10:12", ip: 10.9.10.12,
       labels: {tier: web}, host: hv2}
  d1: {tenant: t1, segment: db, mac: "02:00:00:09:20:11", ip: 10.9.20.11,
       labels: {tier: db}, host: hv2}
  x1: {tenant: t2, segment: lab, mac: "02:00:00:09:30:11", ip: 10.9.30.11, host: hv1}
  u1: {tenant: t2, segment: lab, mac: "02:00:00:09:30:12", ip: 10.9.30.12, host: hv1}
"""
# The edit: db answers icmp from web, and web no longer reaches db on tcp/5432.
EDIT = ("- {from: web, to: db, allow: [tcp/5432]}",
        "- {from: web, to: db, allow: [icmp]}")


class Dom(HTMLParser):
    """Every element's tag, attributes and direct text, in document order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[dict[str, str]] = []
        self._open: list[dict[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = {"tag": tag, **{k: v or "" for k, v in attrs}, "text": ""}
        self.elements.append(el)
        if tag not in ("br", "hr", "img", "input", "meta", "link"):
            self._open.append(el)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1]["text"] += data

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str
             ) -> list[dict[str, str]]:
        return [e for e in self.elements
                if (tag is None or e["tag"] == tag)
                and (cls is None or cls in e.get("class", "").split())
                and all(e.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def with_attr(self, tag: str, attr: str) -> list[dict[str, str]]:
        return [e for e in self.elements if e["tag"] == tag and attr in e]


def browse(lab, url: str, budget_ms: int = 8000, window: tuple[int, int] | None = None,
           lang: str = "en-US") -> Dom:
    """Load `url` in headless chromium and return the DOM its scripts built (after
    `budget_ms` of virtual time), in a `window` of that size, in locale `lang`."""
    profile = lab.tmp / f"chromium-{lab.unique()}"
    profile.mkdir()
    size = [f"--window-size={window[0]},{window[1]}"] if window else []
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--no-first-run",
           "--disable-extensions", "--disable-sync", f"--user-data-dir={profile}",
           f"--lang={lang}", *size, f"--virtual-time-budget={budget_ms}", "--dump-dom", url]
    env = dict(os.environ, HOME=str(profile), LANG=f"{lang.replace('-', '_')}.UTF-8",
               LANGUAGE=lang.replace("-", "_"))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)  # its own group: its helpers go with it

    def stop() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(5)

    lab.cleanup.add(f"chromium {proc.pid}", stop)
    out, err = proc.communicate(timeout=90)
    stop()
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return Dom(out.decode())


def setup(lab) -> tuple[dict[str, str], Path, Path, object, str]:
    dpids = {name: lab.random_dpid() for name in ("hv1", "hv2", "leaf")}
    of_port = lab.free_port()
    topo_text = (
        "version: 1\nswitches:\n"
        f"  hv1: {{dpid: {dpids['hv1']}, role: hypervisor}}\n"
        f"  hv2: {{dpid: {dpids['hv2']}, role: hypervisor}}\n"
        f"  leaf: {{dpid: {dpids['leaf']}, role: fabric}}\n"
        "links:\n"
        "  - {a: \"hv1:10\", b: \"leaf:1\"}\n"
        "  - {a: \"hv2:10\", b: \"leaf:2\"}\n")
    topo = lab.write("topology.yaml", topo_text)
    policy = lab.write("policy.yaml", POLICY)
    bridges = {name: lab.bridge(dpid, controller_port=of_port) for name, dpid in dpids.items()}
    lab.link(bridges["hv1"], 10, bridges["leaf"], 1)
    lab.link(bridges["hv2"], 10, bridges["leaf"], 2)
    for vm, (switch, ofport) in VM_PORTS.items():  # u1 stays unbound
        lab.port(bridges[switch], ofport, vm_id=vm)
    token_file = lab.tmp / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    daemon = start(lab, policy, topo, "--listen", f"127.0.0.1:{of_port}",
                   "--api-token-file", str(token_file))
    return bridges, policy, topo, daemon, topo_text


def expected_matrix(policy_text: str, topo_text: str) -> dict[tuple[str, str, str], str]:
    """Every bound pair x probe service -> allowed/denied, from the reference semantics,
    checked against what `sdnctl plan` simulates on the compiled flows."""
    topo = parse_topology(topo_text, "topology.yaml")
    policy = parse_policy(policy_text, "policy.yaml", topo)
    bindings = Bindings({vm: PortRef(*where) for vm, where in VM_PORTS.items()})
    services = probe_services(policy)
    simulated = reachability(compile_network(policy, topo, bindings), policy, topo, bindings,
                             services)
    out = {}
    for (a, b, s), reached in simulated.items():
        promised = reach(policy, a, b, s)
        assert reached == promised, (a, b, s)
        out[(a, b, str(s))] = "allowed" if promised else "denied"
    return out


def test_dashboard_in_a_headless_browser(lab) -> None:
    started = time.monotonic()
    _, policy_path, _, daemon, topo_text = setup(lab)
    wait_programmed(daemon.api, ["hv1", "hv2", "leaf"], timeout=30, token=TOKEN)

    # Without the token the page loads but no data does: it asks for the token.
    dom = browse(lab, f"http://{daemon.api}/")
    body = dom.find("body")[0]
    assert body.get("data-needs-token") == "1" and "data-ready" not in body
    assert "hidden" not in dom.find("form", id="login")[0]
    assert not dom.with_attr("tr", "data-vm")

    # An edit, enforced: the page must show its effect.
    old_text = POLICY
    new_text = POLICY.replace(*EDIT)
    assert new_text != old_text
    policy_path.write_text(new_text)
    sha = get_status(daemon.api, token=TOKEN)["policy"]["sha256"]
    new_sha = hashlib.sha256(new_text.encode()).hexdigest()
    assert sha != new_sha
    wait_policy(daemon.api, new_sha, timeout=30, token=TOKEN)
    wait_programmed(daemon.api, ["hv1", "hv2", "leaf"], timeout=30, token=TOKEN)

    dom = browse(lab, f"http://{daemon.api}/#token={TOKEN}&service=all&explain=w1,d1,icmp")
    body = dom.find("body")[0]
    assert body.get("data-ready") == "1", "the page never finished loading its data"
    assert "data-needs-token" not in body

    # Topology: every switch drawn and listed, with its state.
    drawn = {e["data-switch"]: e for e in dom.find("g", cls="switch")}
    listed = {e["data-switch"] for e in dom.find("tr") if "data-switch" in e}
    assert set(drawn) == listed == {"hv1", "hv2", "leaf"}
    assert all("programmed" in e["class"].split() for e in drawn.values())
    assert len(dom.find("line", cls="link")) == 2

    # VMs: each where OVSDB bound it, u1 unbound.
    rows = {e["data-vm"]: e["data-at"] for e in dom.find("tr") if "data-vm" in e}
    assert rows == {**{vm: f"{sw}:{port}" for vm, (sw, port) in VM_PORTS.items()}, "u1": ""}
    assert {e["data-vm"] for e in dom.find("g", cls="vm")} == set(rows)

    # The matrix: every bound pair x service, as the new policy promises.
    want = expected_matrix(new_text, topo_text)
    got = {(e["data-from"], e["data-to"], e["data-service"]): e["data-state"]
           for e in dom.find("td", cls="cell")}
    assert got == want
    by_state = defaultdict(int)
    for state in got.values():
        by_state[state] += 1
    assert by_state["allowed"] > 0 and by_state["denied"] > 0 and by_state["mismatch"] == 0
    assert {e["data-service"] for e in dom.find("table", cls="matrix")} == {s for _, _, s in want}

    # Explain on click (through the URL fragment): the trace, table by table.
    box = dom.find("div", id="explain")[0]
    assert box.get("data-explained") == "w1,d1,icmp"
    assert box.get("data-verdict") == want[("w1", "d1", "icmp")] == "allowed"
    tables = [e["data-table"] for e in dom.find("tr") if "data-table" in e]
    assert "acl" in tables and "port_security" in tables

    # The last edit and the reachability it changed (semantics over all placed VMs).
    edit = dom.find("li", cls="edit", data_kind="enforced")
    assert len(edit) == 1 and edit[0]["data-to"] == new_sha
    old = parse_policy(old_text, "old.yaml", parse_topology(topo_text, "t.yaml"))
    new = parse_policy(new_text, "new.yaml", parse_topology(topo_text, "t.yaml"))
    services = sorted(set(probe_services(old)) | set(probe_services(new)))
    placed = planned_bindings(new, parse_topology(topo_text, "t.yaml")).ports
    pairs = [(a, b) for a in sorted(placed) for b in sorted(placed) if a != b]
    added = {f"{a},{b},{s}" for a, b in pairs for s in services
             if reach(new, a, b, s) and not reach(old, a, b, s)}
    removed = {f"{a},{b},{s}" for a, b in pairs for s in services
               if reach(old, a, b, s) and not reach(new, a, b, s)}
    assert added and removed
    # The plan speaks in ranges: at every probed service, they change where it says.
    shown_added = [e["data-triple"] for e in dom.find("li", cls="added")]
    shown_removed = [e["data-triple"] for e in dom.find("li", cls="removed")]
    assert _at_probes(shown_added, services) == added
    assert _at_probes(shown_removed, services) == removed
    assert (edit[0]["data-added"], edit[0]["data-removed"]) == (str(len(shown_added)),
                                                                 str(len(shown_removed)))
    assert daemon.stop() == 0
    print(f"dashboard test took {time.monotonic() - started:.1f} s")


def _at_probes(triples, services) -> set[str]:
    from sdnctl.policy.services import ServiceRange

    out = set()
    for triple in triples:
        a, b, text = triple.split(",")
        out |= {f"{a},{b},{s}" for s in services if ServiceRange.parse(text).contains(s)}
    return out
