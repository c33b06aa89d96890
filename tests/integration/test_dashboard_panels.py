"""The dashboard's connection-log panel and mirror buttons, in headless chromium.

The page talks to the daemon's own API app (sdnctl.api.make_api with the daemon's
mirror commands, sdnctl.mirrorcmd) over a ControllerState whose policy names VMs
plugged into a real bridge, with a token, as a daemon started with
--api-token-file serves it. The connection log holds one allowed and one denied
record. A script of the test, added after the page, drives the page's own form
and buttons (as a person would click them) and writes what it saw into the DOM
that `--dump-dom` returns: a mirror to another tenant's VM port is refused, a
mirror into a namespace starts (OVSDB lists it, the page shows it), and its Stop
button removes it. The same commands are then sent to the real daemon (its OVSDB
monitor lists the mirror, its API threads run the command).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer, make_server

import pytest
from daemon_cmd import one_hypervisor
from test_dashboard import browse

from sdnctl.api import JSON, make_api
from sdnctl.bindings import Bindings
from sdnctl.client.api import get_json
from sdnctl.compile.acl import rule_owner
from sdnctl.dashboard import page
from sdnctl.flows import cookie_of
from sdnctl.live.state import ControllerState, PolicyInfo
from sdnctl.mirrorcmd import mirror_runner
from sdnctl.policy.load import parse_policy
from sdnctl.southbound.mirror import list_mirrors, stop_mirrors
from sdnctl.southbound.ovsdb import BindingSnapshot
from sdnctl.topology.load import parse_topology
from sdnctl.topology.model import PortRef

pytestmark = [pytest.mark.ovs]

OVSDB = "unix:/var/run/openvswitch/db.sock"
TOKEN = "panel-" + secrets.token_hex(8)
POLICY = """\
version: 1
tenants:
  t1:
    log_denied: true
    segments:
      web: {{vlan: 31, subnet: 10.31.0.0/24}}
    groups:
      web: {{vms: [{w}]}}
    rules:
      - {{from: web, to: web, allow: [tcp/80], log: true}}
  t2:
    segments:
      web: {{vlan: 32, subnet: 10.32.0.0/24}}
vms:
  {w}: {{tenant: t1, segment: web, mac: "02:00:00:31:00:0a", ip: 10.31.0.10, host: hv1}}
  {v}: {{tenant: t1, segment: web, mac: "02:00:00:31:00:0b", ip: 10.31.0.11, host: hv1}}
  {x}: {{tenant: t2, segment: web, mac: "02:00:00:32:00:0a", ip: 10.32.0.10, host: hv1}}
"""
# Drives the page once its data is in: a refused start, a good start, then Stop.
DRIVE = """<script>
(function drive() {
  const body = document.body, result = document.getElementById("mirror-result");
  const set = (id, value) => { document.getElementById(id).value = value; };
  const rows = () => document.querySelectorAll("tr[data-mirror-vm]");
  const wait = (ok, then) => (function poll() { ok() ? then() : setTimeout(poll, 100); })();
  if (body.dataset.ready !== "1") return setTimeout(drive, 50);
  set("mirror-vm", "%(w)s"); set("mirror-kind", "to"); set("mirror-end", "%(x_port)s");
  document.getElementById("mirror-form").requestSubmit();
  wait(() => result.dataset.outcome, () => {
    body.dataset.refused = result.dataset.outcome + " " + result.textContent;
    delete result.dataset.outcome;
    set("mirror-kind", "netns"); set("mirror-end", "%(ns)s"); set("mirror-direction", "in");
    document.getElementById("mirror-form").requestSubmit();
    wait(() => result.dataset.outcome && rows().length, () => {
      const row = rows()[0];
      body.dataset.started = result.dataset.outcome + " " + row.dataset.mirrorVm + " " +
        row.textContent;
      delete result.dataset.outcome;
      row.querySelector("button[data-stop]").click();
      wait(() => result.dataset.outcome && !rows().length, () => {
        body.dataset.stopped = result.dataset.outcome;
      });
    });
  });
})();
</script>"""


def _frame(src: str, dst: str, proto: int, sport: int, dport: int) -> bytes:
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, proto, 0, 0])
    ip += ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    return bytes(12) + b"\x08\x00" + ip + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")


class PageServer:
    """The API app on a port of its own; `/` is the page with DRIVE after it."""

    def __init__(self, state: ControllerState, script: str) -> None:
        self.server: WSGIServer = make_server("127.0.0.1", 0, self._app)
        self.port = self.server.server_address[1]
        self.api = make_api(state, token=TOKEN, bind=("127.0.0.1", self.port),
                            mirror=mirror_runner(state, OVSDB))
        self.script = script
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _app(self, environ, start):  # noqa: ANN001, ANN202 (WSGI)
        if environ.get("PATH_INFO") == "/":
            body = page().body.replace(b"</body>", self.script.encode() + b"</body>")
            start("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                             ("Content-Length", str(len(body)))])
            return [body]
        return self.api(environ, start)


@pytest.fixture
def panel(lab) -> Iterator[tuple[PageServer, dict[str, str], str, str]]:
    names = {k: f"{k}{secrets.token_hex(3)}" for k in "wvx"}
    dpid = lab.random_dpid()
    topo = parse_topology(f"version: 1\nswitches:\n  hv1: {{dpid: {dpid}, role: hypervisor}}\n"
                          "links: []\n", "topology.yaml")
    policy = parse_policy(POLICY.format(**names), "policy.yaml", topo)
    bridge = lab.bridge(dpid)
    ports = {k: lab.port(bridge, 100 + i, vm_id=names[k]) for i, k in enumerate("wvx")}
    bindings = Bindings({names[k]: PortRef("hv1", 100 + i) for i, k in enumerate("wvx")})
    state = ControllerState(policy, topo, PolicyInfo("policy.yaml", "0" * 64, 1700000000.0),
                            BindingSnapshot(bindings))
    state.recompile()
    state.daemon.mirrors = lambda: [m.as_json() for m in list_mirrors(OVSDB)
                                    if m.bridge == bridge]
    rule = policy.tenants["t1"].rules[0]
    state.connlog.add(policy, bindings, "hv1", 100, cookie_of(rule_owner(rule)),
                      _frame("10.31.0.10", "10.31.0.11", 6, 40000, 80))
    state.connlog.add(policy, bindings, "hv1", 100, cookie_of("tenant:t1"),
                      _frame("10.31.0.10", "10.31.0.11", 17, 5000, 53))
    ns = lab.cleanup.netns(f"cap{secrets.token_hex(3)}")  # gone at teardown whatever happens
    lab.cleanup.add("the test's mirrors", lambda: stop_mirrors(names["w"], OVSDB))
    server = PageServer(state, DRIVE % {"w": names["w"], "x_port": ports["x"], "ns": ns})
    server.thread.start()
    yield server, names, bridge, ns
    server.server.shutdown()
    server.server.server_close()


@pytest.mark.needs("chromium")
def test_the_log_panel_lists_records_and_the_mirror_buttons_work(lab, panel) -> None:
    server, names, bridge, ns = panel
    dom = browse(lab, f"http://127.0.0.1:{server.port}/#token={TOKEN}", budget_ms=20000)
    body = dom.find("body")[0]
    assert body.get("data-ready") == "1" and "data-needs-token" not in body

    # The connection log: both records, newest first, with rule, VMs and port.
    rows = [(e["data-verdict"], e["data-rule"], e["data-src"], e["data-dst"], e["data-dst-port"])
            for e in dom.find("tr", cls="record")]
    assert rows == [("deny", "", names["w"], names["v"], "53"),
                    ("allow", "web->web", names["w"], names["v"], "80")]
    counters = dom.find("div", id="connection-counters")[0]["text"]
    assert "1 allowed and 1 denied recorded" in counters

    # Mirrors: another tenant's port refused; a namespace accepted, shown, then stopped.
    assert body.get("data-refused", "").startswith("error refused:"), body.get("data-refused")
    started = body.get("data-started", "")
    assert started.startswith(f"ok {names['w']} {names['w']}{bridge}in"), started
    assert body.get("data-stopped") == "ok", body
    assert not [m for m in list_mirrors(OVSDB) if m.bridge == bridge]
    with contextlib.suppress(Exception):
        stop_mirrors(names["w"], OVSDB)


def _post(api: str, path: str, doc: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://{api}{path}", data=json.dumps(doc).encode(),
                                     method="POST", headers={"Content-Type": JSON})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _listed(api: str, vm: str, present: bool) -> list[dict]:
    """The daemon's /mirrors for `vm`, once its OVSDB monitor shows it (or not)."""
    deadline = time.monotonic() + 15
    while True:
        found = [m for m in get_json(api, "/mirrors")["mirrors"] if m["vm"] == vm]
        if bool(found) == present or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_the_daemon_runs_the_pages_mirror_commands(lab) -> None:
    """The page's POSTs against the real daemon: its OVSDB, its policy, its threads."""
    names = {k: f"{k}{secrets.token_hex(3)}" for k in "wvx"}
    bridge, daemon = one_hypervisor(lab, POLICY.format(**names))
    ports = {k: lab.port(bridge, 100 + i, vm_id=names[k]) for i, k in enumerate("wvx")}
    ns = lab.cleanup.netns(f"cap{secrets.token_hex(3)}")
    lab.cleanup.add("the test's mirrors", lambda: stop_mirrors(names["w"], OVSDB))
    code, doc = _post(daemon.api, "/mirrors/start", {"vm": names["w"], "to": ports["x"]})
    assert code == 403 and "another tenant" in doc["error"], doc
    code, doc = _post(daemon.api, "/mirrors/start", {"vm": names["w"], "netns": ns,
                                                     "direction": "out"})
    assert code == 200, doc
    [mirror] = _listed(daemon.api, names["w"], present=True)
    assert (mirror["bridge"], mirror["netns"], mirror["direction"], mirror["selects"]) == (
        bridge, ns, "out", [ports["w"]])
    code, doc = _post(daemon.api, "/mirrors/stop", {"vm": names["w"]})
    assert code == 200, doc
    assert _listed(daemon.api, names["w"], present=False) == []
    assert not [m for m in list_mirrors(OVSDB) if m.bridge == bridge]
