"""The dashboard's JSON documents and page, on compiled networks (no switch, no root).

Expectations come from the reference semantics (sdnctl.verify.semantics) and from
`sdnctl plan`'s simulation of compiled flows, never from the dashboard's own code."""

from __future__ import annotations

import ast
import base64
import dataclasses
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType
from wsgiref.util import setup_testing_defaults

import pytest

from sdnctl.api import make_api
from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.dashboard import Dashboard
from sdnctl.dashboard.data import switch_layers
from sdnctl.flows import FlowSet, cookie_of
from sdnctl.live.state import ControllerState, PolicyInfo
from sdnctl.policy.load import load_policy, parse_policy
from sdnctl.southbound.ovsdb import BindingSnapshot
from sdnctl.topology.load import load_topology
from sdnctl.verify.reach import reachability
from sdnctl.verify.semantics import probe_services, reach

ROOT = Path(__file__).resolve().parents[2]
NETWORKS = ["three-tier", "multi-tenant", "leaf-spine"]
TOKEN = "dash-token-0123456789"
PKG = ROOT / "sdnctl" / "dashboard"


def make_state(name: str, bindings: Bindings | None = None) -> ControllerState:
    topo_path = ROOT / "topologies" / f"{name}.topology.yaml"
    pol_path = ROOT / "topologies" / f"{name}.policy.yaml"
    topo = load_topology(topo_path)
    policy = load_policy(pol_path, topo)
    info = PolicyInfo(str(pol_path), "ab" * 32, 1.0, pol_path.read_text())
    snap = BindingSnapshot(bindings if bindings is not None else planned_bindings(policy, topo))
    st = ControllerState(policy, topo, info, snap)
    st.recompile()
    return st


def installed_as_desired(st: ControllerState) -> None:
    """What a programmed switch looks like: it holds exactly its intent."""
    for sw in st.switches.values():
        sw.on_installed_read(sw.desired, [])


def call(app, path: str, query: str = "", method: str = "GET",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": query}
    for k, v in (headers or {}).items():
        environ[f"HTTP_{k.upper().replace('-', '_')}"] = v
    setup_testing_defaults(environ)
    got: dict = {}

    def start(status: str, hdrs: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(hdrs)

    body = b"".join(app(environ, start))
    return int(got["status"].split()[0]), got["headers"], body


def get_json(app, path: str, query: str = "") -> dict:
    code, _, body = call(app, path, query)
    assert code == 200, body
    return json.loads(body)


def cells(doc: dict) -> dict[tuple[str, str, str], dict]:
    vms = doc["vms"]
    return {(vms[i], vms[j], svc): cell
            for svc, rows in doc["cells"].items()
            for i, row in enumerate(rows) for j, cell in enumerate(row) if cell is not None}


# ---- the matrix -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NETWORKS)
def test_matrix_equals_the_policy_and_plans_simulation(name) -> None:
    st = make_state(name)
    installed_as_desired(st)
    doc = get_json(make_api(st), "/matrix")
    policy, bindings = st.policy, st.snapshot.bindings
    services = probe_services(policy)
    assert doc["services"] == [str(s) for s in services]
    assert doc["vms"] == sorted(policy.vms) and doc["unbound"] == []
    # What `sdnctl plan` simulates: the compiled flows, probe by probe.
    planned = reachability(compile_network(policy, st.topology, bindings), policy,
                           st.topology, bindings, services)
    got = cells(doc)
    assert len(got) == len(planned) > 0
    for (a, b, s), reached in planned.items():
        promised = reach(policy, a, b, s)
        assert reached == promised, (a, b, s)
        cell = got[(a, b, str(s))]
        assert cell["state"] == ("allowed" if promised else "denied"), (a, b, s, cell)
        assert cell["live"] == cell["intent"] == cell["promised"] == promised
    assert doc["mismatches"] == 0
    assert any(c["state"] == "allowed" for c in got.values())
    assert any(c["state"] == "denied" for c in got.values())


def _acl_owner(app, src: str, dst: str, service: str) -> tuple[str, str]:
    """(switch, owner) of the acl flow that lets src -> dst through, from its explanation."""
    ex = get_json(app, "/explain", f"from={src}&to={dst}&service={service}")
    assert ex["verdict"] == "allowed"
    step = next(s for s in ex["steps"] if s["phase"] == "request" and s["table"] == "acl")
    return step["switch"], step["owner"]


def test_a_switch_missing_flows_shows_as_mismatch_and_explain_tells_live_from_intent():
    st = make_state("three-tier")
    installed_as_desired(st)
    app = make_api(st)
    switch, owner = _acl_owner(app, "web1", "app1", "tcp/8080")
    sw = st.switches[switch]
    assert sw.desired is not None
    kept = [f for f in sw.desired.flows if f.owner != owner]
    assert len(kept) < len(sw.desired.flows)
    sw.on_installed_read(FlowSet.build(sw.name, kept, sw.desired.groups, sw.desired.meters),
                         [])

    doc = get_json(app, "/matrix")
    got = cells(doc)
    cell = got[("web1", "app1", "tcp/8080")]
    assert cell == {"state": "mismatch", "live": False, "intent": True, "promised": True,
                    "why": "intent lets it through, the switches do not"}
    bad = {k for k, c in got.items() if c["state"] == "mismatch"}
    assert doc["mismatches"] == len(bad) >= 1
    assert all(got[k]["intent"] == got[k]["promised"] != got[k]["live"] for k in bad)
    # Only connections whose rule flows were taken off that switch can change.
    assert all(reach(st.policy, a, b, next(x for x in probe_services(st.policy) if str(x) == s))
               for a, b, s in bad)

    live = get_json(app, "/explain", "from=web1&to=app1&service=tcp/8080")
    intent = get_json(app, "/explain", "from=web1&to=app1&service=tcp/8080&source=intent")
    assert (live["verdict"], live["source"], live["mismatch"]) == ("denied", "live", True)
    assert (intent["verdict"], intent["source"], intent["mismatch"]) == ("allowed", "intent",
                                                                          False)
    assert "acl" in live["reason"] and "WARNING" in live["text"]

    net = get_json(app, "/network")
    in_sync = {s["name"]: s["in_sync"] for s in net["switches"]}
    assert in_sync[switch] is False
    assert all(v is True for n, v in in_sync.items() if n != switch)


def test_matrix_is_cached_until_a_flowset_changes() -> None:
    st = make_state("three-tier")
    installed_as_desired(st)
    board = Dashboard(st)
    first = board.matrix({})
    assert board.matrix({}) is first
    sw = st.switches["hv2"]
    assert sw.desired is not None
    sw.on_installed_read(FlowSet.build(sw.name, sw.desired.flows[1:], sw.desired.groups,
                                       sw.desired.meters), [])
    assert board.matrix({}) is not first


def test_unbound_vms_are_listed_not_probed_and_nothing_read_is_unknown_sync() -> None:
    st0 = make_state("three-tier")
    ports = dict(st0.snapshot.bindings.ports)
    del ports["db1"]
    st = make_state("three-tier", Bindings(MappingProxyType(ports)))  # installed: nothing read
    app = make_api(st)
    doc = get_json(app, "/matrix")
    assert "db1" not in doc["vms"] and doc["unbound"] == ["db1"]
    assert set(doc["live_from"].values()) == {"intent (not read yet)"}
    net = get_json(app, "/network")
    assert net["unbound"] == ["db1"]
    assert {v["name"]: v["at"] for v in net["vms"]}["db1"] is None
    assert all(s["in_sync"] is None for s in net["switches"])
    ex = get_json(app, "/explain", "from=web1&to=db1&service=tcp/5432")
    assert ex["verdict"] == "denied" and ex["reason"] == "not bound"


# ---- network ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NETWORKS)
def test_network_lists_switches_links_and_where_each_vm_is(name) -> None:
    st = make_state(name)
    net = get_json(make_api(st), "/network")
    topo, ports = st.topology, st.snapshot.bindings.ports
    assert [s["name"] for s in net["switches"]] == sorted(topo.switches)
    assert {(lk["a"], lk["b"]) for lk in net["links"]} == {
        (str(lk.a), str(lk.b)) for lk in topo.links}
    for s in net["switches"]:
        role = topo.switches[s["name"]].role.value
        assert s["role"] == role and (s["layer"] == 0) == (role == "hypervisor")
        assert s["vms"] == sorted(vm for vm, ref in ports.items() if ref.switch == s["name"])
    for vm in net["vms"]:
        model = st.policy.vms[vm["name"]]
        assert (vm["tenant"], vm["segment"], vm["ip"], vm["at"]) == (
            model.tenant, model.segment, str(model.ip), str(ports[vm["name"]]))


def test_layers_count_hops_from_the_hypervisors() -> None:
    topo = load_topology(ROOT / "topologies" / "leaf-spine.topology.yaml")
    layers = switch_layers(topo)
    g = topo.graph()
    for name, layer in layers.items():
        if topo.switches[name].role.value == "hypervisor":
            assert layer == 0
        else:
            assert layer == 1 + min(layers[n] for n in g.neighbors(name))


# ---- explain: bad queries ------------------------------------------------------------------


@pytest.mark.parametrize(("query", "needle"), [
    ("", "from=VM is needed"),
    ("from=web1&service=icmp", "to=VM is needed"),
    ("from=web1&to=app1", "service=SERVICE is needed"),
    ("from=nosuch&to=app1&service=icmp", "no such VM"),
    ("from=web1&to=web1&service=icmp", "pick two VMs"),
    ("from=web1&to=app1&service=tcp/0", "bad service"),
    ("from=web1&to=app1&service=sctp/80", "bad service"),
    ("from=web1&to=app1&service=icmp&source=disk", "expected one of live, intent"),
    ("from=web1&to=app1&service=icmp&color=red", "unknown query parameter"),
    ("from=web1&from=web2&to=app1&service=icmp", "given twice"),
])
def test_bad_explain_queries_are_400_with_a_reason(query, needle) -> None:
    code, headers, body = call(make_api(make_state("three-tier")), "/explain", query)
    assert code == 400 and headers["Content-Type"] == "application/json"
    assert needle in json.loads(body)["error"]


def test_bad_matrix_service_is_400_and_one_service_can_be_asked_for() -> None:
    app = make_api(make_state("three-tier"))
    code, _, body = call(app, "/matrix", "service=tcp/99999")
    assert code == 400 and "tcp/99999" in json.loads(body)["error"]
    doc = get_json(app, "/matrix", "service=tcp/5432")
    assert doc["services"] == ["tcp/5432"] and list(doc["cells"]) == ["tcp/5432"]
    assert any(c["state"] == "allowed" for c in cells(doc).values())


# ---- edits -----------------------------------------------------------------------------------


def test_an_enforced_edit_shows_its_flow_mods_and_the_reachability_it_changes() -> None:
    st = make_state("three-tier")
    old = st.policy
    text = Path(old.source).read_text()
    edited = text.replace("- {from: app, to: db, allow: [tcp/5432]}",
                          "- {from: web, to: db, allow: [tcp/5432, icmp]}")
    assert edited != text
    new = parse_policy(edited, "edited.yaml", st.topology)
    start = st.edit_started()
    st.adopt(dataclasses.replace(st.inputs, policy=new,
                                 policy_info=PolicyInfo("edited.yaml", "cd" * 32, 2.0, edited)))
    changed = st.recompile()
    st.edit_enforced(start, "file changed: edited.yaml", changed)
    st.record("refused", "file changed: edited.yaml: edit refused (1 problems)")

    doc = get_json(make_api(st), "/edits")
    refused, enforced = doc["edits"]  # newest first
    assert refused["kind"] == "refused" and "refused" in refused["what"]
    assert enforced["kind"] == "enforced"
    assert (enforced["from_sha"], enforced["to_sha"]) == ("ab" * 32, "cd" * 32)
    assert enforced["switches"] == sorted(sw.name for sw in changed) != []
    assert enforced["flow_mods"] > 0 and set(enforced["per_switch"]) == set(enforced["switches"])

    services = sorted(set(probe_services(old)) | set(probe_services(new)))
    pairs = [(a, b) for a in sorted(old.vms) for b in sorted(old.vms) if a != b]
    want_added = sorted((a, b, str(s)) for a, b in pairs for s in services
                        if reach(new, a, b, s) and not reach(old, a, b, s))
    want_removed = sorted((a, b, str(s)) for a, b in pairs for s in services
                          if reach(old, a, b, s) and not reach(new, a, b, s))
    r = enforced["reachability"]
    # The plan speaks in ranges: at every probed service, they change where it says.
    assert _at_probes(r["added"], services) == want_added != []
    assert _at_probes(r["removed"], services) == want_removed != []
    assert (r["n_added"], r["n_removed"]) == (len(r["added"]), len(r["removed"]))


def _at_probes(triples, services) -> list[tuple[str, str, str]]:
    from sdnctl.policy.services import ServiceRange

    return sorted({(a, b, str(s)) for a, b, text in triples for s in services
                   if ServiceRange.parse(text).contains(s)})


def test_edit_history_is_bounded() -> None:
    from sdnctl.live.history import MAX_EDITS

    st = make_state("single")
    for i in range(MAX_EDITS + 3):
        st.edit_enforced(st.edit_started(), f"edit {i}", [])
    edits = st.history.edits
    assert len(edits) == MAX_EDITS and edits[-1].what == f"edit {MAX_EDITS + 2}"


# ---- the page and the token --------------------------------------------------------------------


def _inline(tag: str, html: str) -> str:
    m = re.search(f"<{tag}>(.*?)</{tag}>", html, re.S)
    assert m
    return m.group(1)


def test_the_page_is_self_contained_and_its_csp_allows_only_its_own_code() -> None:
    app = make_api(make_state("three-tier"), token=TOKEN)
    for path in ("/", "/dashboard", "/dashboard/"):
        code, headers, body = call(app, path)  # no token: the page holds no data
        assert code == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    html = body.decode()
    assert "<!--" not in html.split("<body>")[0]  # placeholders filled
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing from elsewhere
    csp = headers["Content-Security-Policy"]
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        digest = base64.b64encode(hashlib.sha256(_inline(tag, html).encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    code, headers, body = call(app, "/", method="HEAD")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 1000
    assert call(app, "/", method="POST")[0] == 405
    assert call(app, "/", query="x=1")[0] == 400


@pytest.mark.parametrize("path", ["/network", "/matrix", "/edits",
                                  "/explain?from=web1&to=app1&service=icmp", "/connections",
                                  "/mirrors"])
def test_every_data_route_needs_the_token(path) -> None:
    app = make_api(make_state("three-tier"), token=TOKEN)
    route, _, query = path.partition("?")
    assert call(app, route, query)[0] == 401
    assert call(app, route, query, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert call(app, route, query, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_the_dashboard_imports_no_effectful_library() -> None:
    forbidden = {"os_ken", "ryu", "pyroute2", "ovs", "subprocess", "mininet", "socket"}
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []
    code = ("import sys, sdnctl.dashboard; "
            "sys.exit(any(m.split('.')[0] in ('os_ken', 'eventlet') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_page_and_assets_ship_as_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    for name in ("page.html", "app.js", "style.css"):
        assert (PKG / "static" / name).is_file()
    assert '"dashboard/static/*"' in text


def test_a_view_is_a_snapshot() -> None:
    st = make_state("three-tier")
    board = Dashboard(st)
    view = board.view()
    st.switches["hv1"].want(FlowSet.of("hv1", ()), 0.0)  # later changes do not reach it
    assert view.intent["hv1"].n_flows > 0 and board.view().intent["hv1"].n_flows == 0


def test_each_vm_shows_what_the_controller_answered_it() -> None:
    """The counts come from the responder itself (a DHCP DISCOVER answered, a TTL-1
    packet to the gateway answered): the VM that asked has them, the others none."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    from sdnctl.dhcp.wire import MessageType, encode_request
    from sdnctl.pipeline import gateway_mac

    st = make_state("three-tier")
    name, vm = next((n, v) for n, v in sorted(st.policy.vms.items())
                    if st.policy.segment_of(v).gateway is not None)
    at = st.snapshot.bindings.ports[name]
    seg = st.policy.segment_of(vm)
    ask = encode_request(MessageType.DISCOVER, vm.mac, 7)
    expiring = bytes(Ether(src=vm.mac, dst=gateway_mac(seg.id))
                     / IP(src=str(vm.ip), dst="192.0.2.9", ttl=1) / ICMP())
    for frame in (ask, expiring):
        assert st.dhcp.handle(st.policy, st.topology, st.snapshot.bindings, at.switch, at.port,
                              frame) is not None
    net = get_json(make_api(st), "/network")
    rows = {v["name"]: v["answers"] for v in net["vms"]}
    assert rows[name]["offer"] == 1 and rows[name]["time-exceeded"] == 1
    assert all(answers is None for other, answers in rows.items() if other != name)


# ---- the connection-log panel and the mirror commands ------------------------------------

def _post(app, path: str, body: bytes, kind: str = "application/json",
          headers: dict[str, str] | None = None) -> tuple[int, dict]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "POST", "QUERY_STRING": "",
                     "CONTENT_TYPE": kind, "CONTENT_LENGTH": str(len(body)),
                     "wsgi.input": io.BytesIO(body)}
    for k, v in (headers or {}).items():
        environ[f"HTTP_{k.upper().replace('-', '_')}"] = v
    setup_testing_defaults(environ)
    got: dict = {}

    def start(status: str, hdrs: list[tuple[str, str]]) -> None:
        got["status"] = status

    out = b"".join(app(environ, start))
    return int(got["status"].split()[0]), json.loads(out)


def test_mirror_commands_need_the_token_json_and_post_and_reach_the_runner() -> None:
    ran: list[tuple[str, dict]] = []

    def runner(action: str, body: dict) -> tuple[str, dict[str, object]]:
        ran.append((action, body))
        return "200 OK", {"summary": f"{action} done", "changes": [], "notes": []}

    app = make_api(make_state("three-tier"), token=TOKEN, mirror=runner)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    good = json.dumps({"vm": "web1", "netns": "cap1"}).encode()
    assert _post(app, "/mirrors/start", good)[0] == 401  # no token, no command
    assert _post(app, "/mirrors/start", good, headers={"Authorization": "Bearer x"})[0] == 401
    # A form post (what a page elsewhere could make a browser send) is not JSON.
    assert _post(app, "/mirrors/start", b"vm=web1", "application/x-www-form-urlencoded",
                 auth)[0] == 415
    assert _post(app, "/mirrors/start", b"[1]", headers=auth)[0] == 400
    assert _post(app, "/mirrors/start", b"{", headers=auth)[0] == 400
    assert call(app, "/mirrors/start", headers=auth)[0] == 405  # GET
    assert ran == []
    assert _post(app, "/mirrors/start", good, headers=auth) == (200, {
        "summary": "start done", "changes": [], "notes": []})
    assert _post(app, "/mirrors/stop", b'{"vm": "web1"}', headers=auth)[0] == 200
    assert ran == [("start", {"vm": "web1", "netns": "cap1"}), ("stop", {"vm": "web1"})]
    # Without a token (loopback): another origin is refused before anything runs.
    open_app = make_api(make_state("three-tier"), mirror=runner,
                        bind=("127.0.0.1", 8680))
    assert _post(open_app, "/mirrors/stop", b'{"vm": "web1"}',
                 headers={"Host": "127.0.0.1:8680", "Origin": "http://evil.example"})[0] == 403
    assert len(ran) == 2
    # A daemon without mirror control says so.
    assert _post(make_api(make_state("three-tier"), token=TOKEN), "/mirrors/stop",
                 b'{"vm": "web1"}', headers=auth)[0] == 503


def test_the_runner_refuses_bad_requests_before_touching_ovsdb() -> None:
    from sdnctl.mirrorcmd import mirror_runner

    run = mirror_runner(make_state("three-tier"), "unix:/nonexistent/db.sock")
    for body, needle in (({}, "vm is required"), ({"vm": "web1"}, "exactly one"),
                         ({"vm": "web1", "to": "p", "netns": "n"}, "exactly one"),
                         ({"vm": "web1", "netns": "n", "direction": "up"}, "direction"),
                         ({"vm": 3, "netns": "n"}, "vm must be a name"),
                         ({"vm": "web1", "netns": "n", "x": 1}, "unknown key")):
        status, doc = run("start", body)
        assert status.startswith("400") and needle in str(doc["error"]), (body, doc)
    status, doc = run("start", {"vm": "nobody", "netns": "n"})
    assert status.startswith("403") and "unknown VM" in str(doc["error"])


def test_connections_doc_lists_records_newest_first_and_checks_its_query() -> None:
    st = make_state("three-tier")
    for i in range(3):
        st.connlog.add(st.policy, st.snapshot.bindings, "hv1", 1, cookie_of("tenant:acme"),
                       bytes(12) + b"\x08\x00" + bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0,
                       10, 1, 10, 11, 10, 1, 30, 11]) + (1000 + i).to_bytes(2, "big") + bytes(6))
    app = make_api(st)
    doc = get_json(app, "/connections", "limit=2")
    assert [r["src_port"] for r in doc["records"]] == [1002, 1001]
    assert doc["counters"]["records"] == {"allow": 0, "deny": 3}
    assert get_json(app, "/connections", "verdict=allow")["records"] == []
    for query in ("limit=0", "limit=1001", "limit=x", "verdict=maybe", "other=1"):
        assert call(app, "/connections", query)[0] == 400, query
    assert get_json(app, "/mirrors") == {"mirrors": []}


def test_north_south_shows_exits_floating_ips_and_explains_the_outside() -> None:
    st = make_state("northsouth")
    installed_as_desired(st)
    app = make_api(st)
    net = get_json(app, "/network")
    ns = net["north_south"]
    assert [t["tenant"] for t in ns["tenants"]] == ["shop"]
    shop = ns["tenants"][0]
    assert shop["snat"] == "203.0.113.10" and shop["floating"] == {"web1": "203.0.113.20"}
    assert shop["exit"] in {u["uplink"] for u in ns["uplinks"]}
    assert {u["uplink"] for u in ns["uplinks"]} == {"border1:2", "border2:2"}
    assert {v["name"]: v["floating_ip"] for v in net["vms"]}["web1"] == "203.0.113.20"
    # an uplink reported down: the tenant goes out by the other one
    st.links.report_port(shop["exit"].split(":")[0], int(shop["exit"].split(":")[1]), False)
    st.recompile()
    moved = get_json(app, "/network")["north_south"]
    assert moved["tenants"][0]["exit"] not in (None, shop["exit"])
    assert any(u["down"] for u in moved["uplinks"])
    installed_as_desired(st)
    inbound = get_json(app, "/explain", "from=192.0.2.9&to=web1&service=tcp/443&source=intent")
    assert (inbound["verdict"], inbound["mismatch"]) == ("allowed", False)
    assert inbound["seen_as"] == "192.0.2.9"
    denied = get_json(app, "/explain", "from=192.0.2.9&to=web1&service=tcp/22&source=intent")
    assert (denied["verdict"], denied["mismatch"]) == ("denied", False)
    out = get_json(app, "/explain", "from=app1&to=198.51.100.7&service=tcp/443&source=intent")
    assert (out["verdict"], out["seen_as"]) == ("allowed", "203.0.113.10")
