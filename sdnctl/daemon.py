"""`sdnctl run`: the controller daemon.

Loads and validates the policy and topology (refusing bad input with
`file:line: message` and exit code 2), then starts the OVSDB binding monitor, the
OpenFlow 1.3 listener with the controller app, the status API (HTTP/JSON) and a
watch on both files. An edit that validates is applied as a minimal diff per
switch; one that does not is refused (each `file:line: message` in the log and in
`/status` under `policy.last_refused`) and the last good policy stays enforced.
SIGHUP reloads both files at once (also with the watch off, `--no-watch`).
SIGTERM or SIGINT stops it cleanly with exit code 0.

It runs on os-ken 4's default hub, "native" (real threads, not eventlet): shared
state is locked, and os-ken is started from a daemon thread so that none of its
never-ending threads (its listener, one per switch connection) keeps the process
alive after a stop. With OSKEN_HUB_TYPE=eventlet it refuses to start (see below).
os-ken is imported only inside `run_daemon`, so importing this module (the CLI
does) starts nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import socketserver
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sdnctl.flows import flowset_to_json
from sdnctl.live.sources import Sources, load_sources, read_version
from sdnctl.live.watch import DEFAULT_INTERVAL_S, Change, FileWatcher
from sdnctl.yamlsrc import LoadError

if TYPE_CHECKING:
    from apps.controller import ControllerApp
    from sdnctl.live.state import ControllerState

log = logging.getLogger("daemon")

DEFAULT_LISTEN = "0.0.0.0:6653"
DEFAULT_OVSDB = "unix:/var/run/openvswitch/db.sock"
DEFAULT_API = "127.0.0.1:8680"
OVSDB_WAIT_S = 5.0  # how long to wait for the first bindings before programming switches

StartResponse = Callable[[str, list[tuple[str, str]]], object]


def setup_logging(level: int = logging.INFO) -> None:
    """`HH:MM:SS level component: message` on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("os_ken").setLevel(logging.WARNING)  # its per-request and brick chatter


def parse_address(text: str, what: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:port`) -> (host, port); ValueError with a clear message."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} {text!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def check_bindable(host: str, port: int, what: str) -> None:
    """Fail early and clearly on a taken port (os-ken's listener would die in a green thread)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen for {what} on {host}:{port}: {exc.strerror}") from exc


# ---- status API -------------------------------------------------------------------


def make_api(state: ControllerState) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The status API as a WSGI app: GET /status, /flows/SWITCH, /policy (the YAML enforced)."""

    def send(start: StartResponse, code: str, data: bytes, kind: str = "application/json",
             extra: list[tuple[str, str]] | None = None) -> list[bytes]:
        start(code, [("Content-Type", kind), ("Content-Length", str(len(data)))] + (extra or []))
        return [data]

    def as_json(body: object) -> bytes:
        return json.dumps(body, indent=1).encode()

    def flows(name: str) -> tuple[str, bytes]:
        with state.lock:
            sw = state.switches.get(name)
            desired = sw.desired if sw else None
        if sw is None:
            return "404 Not Found", as_json({"error": f"no switch {name!r}"})
        if desired is None:
            return "503 Service Unavailable", as_json({"error": "no compiled flows"})
        return "200 OK", as_json(flowset_to_json(desired))

    Answer = Callable[[], tuple[str, bytes]]

    def enforced_policy() -> tuple[str, bytes]:
        with state.lock:  # a reload swaps it
            return "200 OK", state.policy_info.text.encode()

    def route(path: str) -> tuple[str, Answer] | None:
        """(content type, how to answer) for a known path."""
        if path == "/status":
            return "application/json", lambda: ("200 OK", as_json(state.status()))
        if path == "/policy":
            return "application/yaml; charset=utf-8", enforced_policy
        head, _, name = path[1:].partition("/")
        if head == "flows" and name and "/" not in name:
            return "application/json", lambda: flows(name)
        return None

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        found = route(path)
        if found is None:
            return send(start, "404 Not Found", as_json({"error": f"no such path {path!r}"}))
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            error = as_json({"error": f"{method} not allowed"})
            return send(start, "405 Method Not Allowed", error, extra=[("Allow", "GET, HEAD")])
        kind, answer = found
        code, data = answer()
        return send(start, code, data, kind if code.startswith("200") else "application/json")

    return app


class _ApiServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        logging.getLogger("api").debug(format, *args)


def start_api(state: ControllerState, host: str, port: int) -> WSGIServer:
    server = make_server(host, port, make_api(state), server_class=_ApiServer,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="status-api", daemon=True).start()
    return server


# ---- reloads ------------------------------------------------------------------------


def reload_handler(app: ControllerApp) -> Callable[[Change], None]:
    """What the file watcher calls (in its thread): validate there, off the OpenFlow
    event loop, and hand the app either the new sources or the problems."""

    def on_change(change: Change) -> None:
        policy_file, topology_file = change.files
        try:
            sources: Sources | None = load_sources(policy_file, topology_file)
            problems: list[str] = []
        except LoadError as exc:
            sources, problems = None, [str(p) for p in exc.problems]
        app.post_sources(sources, problems, change)

    return on_change


# ---- the daemon ---------------------------------------------------------------------


def run_daemon(
    policy_path: str,
    topology_path: str,
    listen: str = DEFAULT_LISTEN,
    ovsdb: str = DEFAULT_OVSDB,
    api: str = DEFAULT_API,
    watch_interval_s: float | None = DEFAULT_INTERVAL_S,
) -> int:
    """Run until SIGTERM/SIGINT (exit 0); bad input exits 2, an unusable address 1.

    `watch_interval_s`: how often to poll the two files for edits; None: only on SIGHUP.
    """
    setup_logging()
    started_at = time.monotonic()
    # First thing: SIGHUP's default action kills. Until the watcher exists a SIGHUP is
    # only remembered (its baseline is the versions read below, so an edit made
    # meanwhile is picked up anyway).
    watcher: FileWatcher | None = None
    hup: list[int] = []
    signal.signal(signal.SIGHUP, lambda signum, _f: watcher.trigger() if watcher
                  else hup.append(signum))
    # One read per file: what is validated, hashed and shown by GET /policy is the same.
    policy_file, topology_file = read_version(policy_path), read_version(topology_path)
    try:
        sources = load_sources(policy_file, topology_file)
    except LoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    policy, topology = sources.policy, sources.topology
    try:
        of_host, of_port = parse_address(listen, "--listen")
        api_host, api_port = parse_address(api, "--api")
        check_bindable(of_host, of_port, "OpenFlow")
        check_bindable(api_host, api_port, "the status API")
    except (ValueError, OSError) as exc:
        print(f"sdnctl run: {exc}", file=sys.stderr)
        return 1

    # ovs.poller imports eventlet when installed, which then warns on every start.
    warnings.filterwarnings("ignore", message=r"(?s)\s*Eventlet is deprecated")
    from os_ken.lib import hub

    if hub.HUB_TYPE != "native":
        # Under OSKEN_HUB_TYPE=eventlet, hub.patch() (thread=True) makes eventlet patch
        # threads only, so the OVSDB poller's real select() stalls every green thread;
        # a full monkey_patch() left OpenFlow connections unaccepted. Refuse, not hang.
        print("sdnctl run: needs os-ken's native hub; unset OSKEN_HUB_TYPE", file=sys.stderr)
        return 1
    hub.patch()  # a no-op on the native hub
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    from sdnctl.live.state import ControllerState, PolicyInfo
    from sdnctl.southbound.ovsdb import OvsdbMonitor

    cfg.CONF(args=[], project="os_ken", default_config_files=[])
    cfg.CONF.set_override("ofp_listen_host", of_host)
    cfg.CONF.set_override("ofp_tcp_listen_port", of_port)

    # A plain flag: a handler taking a lock the interrupted main thread holds would deadlock.
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _f: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _f: stopping.append(signum))
    monitor = OvsdbMonitor(ovsdb, policy, topology)
    monitor.start()
    ready = monitor.wait_ready(OVSDB_WAIT_S)
    if not ready:
        log.warning("no answer from OVSDB %s yet: switches are left as they are until it "
                    "answers", ovsdb)
    now = time.time()
    info = PolicyInfo(policy_file.path, policy_file.sha256, now, policy_file.text(),
                      policy_file.mtime)
    topo_info = PolicyInfo(topology_file.path, topology_file.sha256, now, topology_file.text(),
                           topology_file.mtime)
    state = ControllerState(policy, topology, info, monitor.snapshot(), started_at,
                            topology_info=topo_info)
    state.bindings_ready = ready
    state.rebind = monitor.rebind

    manager = AppManager.get_instance()
    started = threading.Event()

    def start_apps() -> None:
        # Threads inherit daemon-ness: started from here, os-ken's never outlive a stop.
        manager.load_apps(["apps.controller"])
        contexts = manager.create_contexts()
        manager.instantiate_apps(sdnctl_state=state, **contexts)
        started.set()

    threading.Thread(target=start_apps, name="os-ken-start", daemon=True).start()
    if not started.wait(10.0):
        print("sdnctl run: os-ken did not start", file=sys.stderr)
        return 1
    app = manager.applications["sdnctl"]
    monitor.subscribe(app.post_bindings)
    if monitor.wait_ready(0) and (not ready or monitor.snapshot() != state.snapshot):
        app.post_bindings(monitor.snapshot())  # came or changed while the app was starting
    api_server = start_api(state, api_host, api_port)
    watcher = FileWatcher([policy_file, topology_file], reload_handler(app), watch_interval_s)
    watcher.start()
    if hup:
        watcher.trigger()
    watching = (f"watching the files every {watch_interval_s * 1000:.0f} ms"
                if watch_interval_s else "reloading on SIGHUP only")
    state.record(
        "start",
        f"listening for OpenFlow on {of_host}:{of_port}, "
        f"status API on http://{api_host}:{api_port}, "
        f"{len(topology.switches)} switches, {len(policy.vms)} VMs, "
        f"{len(state.snapshot.bindings.ports)} bound, {watching}",
    )
    try:
        while not stopping:
            time.sleep(0.2)
    finally:
        log.info("stopping")
        watcher.stop()
        monitor.stop()
        api_server.shutdown()
        api_server.server_close()
        closer = threading.Thread(target=manager.close, name="os-ken-stop", daemon=True)
        closer.start()
        closer.join(3.0)  # os-ken's app threads end on close; do not hang if one does not
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sdnctl.daemon", description=__doc__.split("\n")[0])
    ap.add_argument("-p", "--policy", required=True)
    ap.add_argument("-t", "--topology", required=True)
    ap.add_argument("--listen", default=DEFAULT_LISTEN)
    ap.add_argument("--ovsdb", default=DEFAULT_OVSDB)
    ap.add_argument("--api", default=DEFAULT_API)
    ap.add_argument("--watch-interval", type=float, default=DEFAULT_INTERVAL_S,
                    help="seconds between checks of the files (default %(default)s)")
    ap.add_argument("--no-watch", action="store_true", help="reload on SIGHUP only")
    args = ap.parse_args(argv)
    interval = None if args.no_watch else args.watch_interval
    return run_daemon(args.policy, args.topology, args.listen, args.ovsdb, args.api, interval)


if __name__ == "__main__":
    sys.exit(main())
