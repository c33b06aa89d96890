"""The dashboard page in headless chromium: it fits the screen, names its colours,
writes 24-hour times, and says so when the daemon is gone instead of showing the
last green states as if they were current.

The page talks to the daemon's own API app (sdnctl.api.make_api over a real
ControllerState of the multi-tenant example, every switch programmed), served
here by a small WSGI server that can play a daemon that died: after the first
full refresh it closes every connection unanswered, as a dead process's port
does. The page is the one the daemon serves; for the layout check a script of
the test is added after it (so the page is served without its CSP), which writes
what it measured into the DOM that `--dump-dom` returns.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

import pytest
from test_dashboard import browse

from sdnctl.api import make_api
from sdnctl.bindings import planned_bindings
from sdnctl.dashboard import page
from sdnctl.flows import FlowSet
from sdnctl.live.state import Batch, ControllerState, PolicyInfo
from sdnctl.policy.load import load_policy
from sdnctl.southbound.ovsdb import BindingSnapshot
from sdnctl.topology.load import load_topology

pytestmark = pytest.mark.needs("chromium")

ROOT = Path(__file__).resolve().parents[2]
TIME = re.compile(r"\b\d{2}:\d{2}:\d{2}\b")

# Measures, once the page has its data, every table against the section holding it.
MEASURE = """<script>
(function measure() {
  if (document.body.dataset.ready !== "1") return setTimeout(measure, 50);
  const cut = [];
  for (const table of document.querySelectorAll("main table")) {
    const box = table.closest("section");
    const pad = parseFloat(getComputedStyle(box).paddingRight);
    const right = box.getBoundingClientRect().right - pad;
    if (table.getBoundingClientRect().right > right + 0.5 || box.scrollWidth > box.clientWidth)
      cut.push(table.id || table.className);
  }
  if (document.documentElement.scrollWidth > window.innerWidth) cut.push("page");
  document.body.dataset.cut = cut.join(" ") || "none";
  document.body.dataset.width = String(window.innerWidth);
})();
</script>"""


def programmed_state() -> ControllerState:
    topo = load_topology(ROOT / "topologies" / "multi-tenant.topology.yaml")
    policy = load_policy(ROOT / "topologies" / "multi-tenant.policy.yaml", topo)
    state = ControllerState(policy, topo, PolicyInfo("policy.yaml", "0" * 64, 1700000000.0),
                            BindingSnapshot(planned_bindings(policy, topo)))
    state.recompile()
    for sw in state.switches.values():  # connected, read, one update acknowledged
        sw.on_connect(object(), "127.0.0.1:40000")
        sw.on_installed_read(FlowSet.of(sw.name, ()), [])
        sw.on_sent(Batch(sw.installed, sw.desired, {}, 1, 0.0, "", 0.0), 1, [])
        sw.on_update_done(sw.on_barrier(1), now=0.01)
    return state


class Daemonish:
    """The daemon's API app on a port of its own. The page's refreshes are counted by
    their `/network` request; those numbered in `dead_in` get no answer at all (the
    connection is closed unread, as a dead daemon's port does)."""

    def __init__(self, state: ControllerState, measure: bool) -> None:
        self.dead_in: set[int] = set()
        self.refreshes = 0
        outer = self

        class Handler(WSGIRequestHandler):
            def handle(self) -> None:
                self.raw_requestline = self.rfile.readline(65537)
                if not self.parse_request():
                    return
                if self.path.startswith("/network"):
                    outer.refreshes += 1
                if outer.refreshes in outer.dead_in and self.path != "/":
                    self.close_connection = True
                    return
                handler = ServerHandler(self.rfile, self.wfile, self.get_stderr(),
                                        self.get_environ(), multithread=False)
                handler.request_handler = self
                handler.run(self.server.get_app())

            def log_message(self, *_args: object) -> None:
                pass

        self.server: WSGIServer = make_server("127.0.0.1", 0, self._app,
                                              handler_class=Handler)
        self.port = self.server.server_address[1]
        self.api = make_api(state, bind=("127.0.0.1", self.port))
        self.measure = measure
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _app(self, environ, start):  # noqa: ANN001, ANN202 (WSGI)
        if environ.get("PATH_INFO") == "/" and self.measure:
            body = page().body.replace(b"</body>", MEASURE.encode() + b"</body>")
            start("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                             ("Content-Length", str(len(body)))])
            return [body]
        return self.api(environ, start)


@pytest.fixture
def daemonish(request) -> Iterator[Daemonish]:
    fake = Daemonish(programmed_state(), measure=getattr(request, "param", False))
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.mark.parametrize("daemonish", [True], indirect=True)
@pytest.mark.parametrize("width", [1080, 1240, 1400, 1920])
def test_no_table_is_cut_off(lab, daemonish, width) -> None:
    # With an explanation open: its flows' matches and actions are the longest cells.
    a, b = sorted(programmed_state().policy.vms)[:2]
    dom = browse(lab, f"http://127.0.0.1:{daemonish.port}/#explain={a},{b},icmp",
                 budget_ms=3000, window=(width, 900))
    body = dom.find("body")[0]
    assert body.get("data-ready") == "1"
    assert dom.find("table", id="explain-steps"), "the explanation did not open"
    assert abs(int(body["data-width"]) - width) <= 20  # the window we asked for
    assert body.get("data-cut") == "none", f"cut off at {width} px: {body.get('data-cut')}"


def test_tenant_colours_have_a_legend_and_times_are_24_hour(lab, daemonish) -> None:
    # A locale whose browsers write 12-hour times ("1:05:09 PM") by default.
    dom = browse(lab, f"http://127.0.0.1:{daemonish.port}/", budget_ms=3000, lang="en-US")
    legend = {e["data-tenant"]: e.get("data-colour") for e in dom.find("span", cls="tenant")}
    tenants = set(programmed_state().policy.tenants)
    assert set(legend) == tenants | {""}  # every tenant, and the unbound style
    assert len({legend[t] for t in tenants}) == len(tenants)  # told apart
    vm_fill = {}
    for g in dom.find("g", cls="vm"):
        index = dom.elements.index(g)
        vm_fill[g["data-vm"]] = dom.elements[index + 1].get("fill")  # its rect
    policy = programmed_state().policy
    for vm, fill in vm_fill.items():
        assert fill == legend[policy.vms[vm].tenant], vm  # the legend is the drawing's key
    updated = dom.find("span", id="updated")[0]["text"]
    assert TIME.search(updated), updated
    assert not re.search(r"\b(AM|PM)\b", updated), updated


def test_when_the_daemon_is_gone_nothing_stays_green(lab, daemonish) -> None:
    daemonish.dead_in = set(range(2, 100))  # answers the first refresh only
    dom = browse(lab, f"http://127.0.0.1:{daemonish.port}/", budget_ms=12000)
    body = dom.find("body")[0]
    assert daemonish.refreshes >= 2
    assert body.get("data-ready") == "1", "the first refresh should have worked"
    assert body.get("data-stale") == "1"
    banner = dom.find("div", id="stale")[0]
    assert "hidden" not in banner
    assert "does not answer" in banner["text"] and "switch states are unknown" in banner["text"]
    assert len(TIME.findall(banner["text"])) == 2  # since when, and how old the data is
    assert dom.find("span", id="error")[0]["text"] == "daemon unreachable"
    states = dom.find("td", cls="state")
    assert len(states) == len(programmed_state().switches)
    assert all(td["text"] == "unknown (was programmed)" and "good" not in td["class"]
               for td in states)
    assert not [e for e in dom.elements if "programmed" in e.get("class", "").split()]
    assert not dom.find(cls="good")


def test_a_daemon_answering_again_clears_the_stale_mark(lab, daemonish) -> None:
    daemonish.dead_in = {1}  # the first refresh gets no answer, the next ones do
    dom = browse(lab, f"http://127.0.0.1:{daemonish.port}/", budget_ms=8000)
    body = dom.find("body")[0]
    assert daemonish.refreshes >= 2
    assert body.get("data-ready") == "1" and "data-stale" not in body
    assert "hidden" in dom.find("div", id="stale")[0]
    assert dom.find("span", id="error")[0]["text"] == ""
    assert {td["text"] for td in dom.find("td", cls="state")} == {"programmed"}
