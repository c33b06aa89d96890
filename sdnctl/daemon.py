"""`sdnctl run`: the controller daemon.

Loads and validates the policy and topology (refusing bad input with
`file:line: message` and exit code 2), then starts the OVSDB binding monitor, the
OpenFlow 1.3 listener with the controller app, the status API (HTTP/JSON) and a
watch on both files. An edit that validates is applied as a minimal diff per
switch; one that does not is refused (each `file:line: message` in the log and in
`/status` under `policy.last_refused`) and the last good policy stays enforced.
SIGHUP reloads both files at once (also with the watch off, `--no-watch`).
SIGTERM or SIGINT stops it cleanly with exit code 0.

Start-up has no time limit a big network can exceed: the status API answers first,
then the daemon reads OVSDB (waited for as long as it takes once OVSDB answered;
5 s for it to answer at all), compiles every switch (34 s for 20,000 VMs on the
benchmark machine) and only then starts os-ken, waiting for it without a deadline.
`/status` shows the phase and when each step ended (`daemon.startup`).

The API (sdnctl/api.py) listens on 127.0.0.1 unless told otherwise; any other
address needs a token, and with a token every request must carry it
(sdnctl/apitoken.py). OpenFlow may run over TLS (`--listen ssl:HOST:PORT` with the
controller's key and certificate and the switches' CA, sdnctl/tls.py). Every
`--stats-interval` seconds the app reads each switch's flow stats for the
dropped-by-policy counters of /metrics.

It runs on os-ken 4's default hub, "native" (real threads, not eventlet): shared
state is locked, and os-ken is started from a daemon thread so that none of its
never-ending threads (its listener, one per switch connection) keeps the process
alive after a stop. With OSKEN_HUB_TYPE=eventlet it refuses to start (see below).
os-ken is imported only inside `run_daemon`, so importing this module (the CLI
does) starts nothing.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from sdnctl.api import SwitchReader, SwitchReadError, start_api
from sdnctl.apitoken import ENV as TOKEN_ENV
from sdnctl.apitoken import TokenError, is_loopback, loosely_protected, read_token
from sdnctl.ha.etcd import DEFAULT_PREFIX as DEFAULT_ETCD_PREFIX
from sdnctl.ha.etcd import parse_etcd_url
from sdnctl.ha.model import Revision
from sdnctl.live.sources import SourceReads, Sources, load_sources, read_version
from sdnctl.live.watch import DEFAULT_INTERVAL_S, Change, FileWatcher
from sdnctl.metrics import render_metrics
from sdnctl.tls import (
    HandshakeWatch,
    Listen,
    TlsFiles,
    check_tls,
    configure_os_ken,
    parse_listen,
    watch_handshakes,
)
from sdnctl.yamlsrc import LoadError

if TYPE_CHECKING:
    from apps.controller import ControllerApp
    from sdnctl.ha.election import Election
    from sdnctl.southbound.ovsdb import OvsdbMonitor

log = logging.getLogger("daemon")

DEFAULT_LISTEN = "0.0.0.0:6653"
DEFAULT_OVSDB = "unix:/var/run/openvswitch/db.sock"
DEFAULT_API = "127.0.0.1:8680"
DEFAULT_STATS_INTERVAL_S = 10.0  # flow-stats reads for the drop counters
# How long to wait for OVSDB to answer at all before starting without bindings (the
# switches are then held until it does). Once it has answered, its first full read is
# waited for however long it takes: nothing at start-up has a limit a big network can
# exceed.
OVSDB_WAIT_S = 5.0


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


# ---- reloads ------------------------------------------------------------------------


def reload_handler(app: ControllerApp,
                   reads: SourceReads | None = None) -> Callable[[Change], None]:
    """What the file watcher calls (in its thread): validate there, off the OpenFlow
    event loop, and hand the app either the new sources or the problems."""

    def on_change(change: Change) -> None:
        policy_file, topology_file = change.files
        try:
            sources: Sources | None = load_sources(policy_file, topology_file, reads)
            problems: list[str] = []
        except LoadError as exc:
            sources, problems = None, [str(p) for p in exc.problems]
        app.post_sources(sources, problems, change)

    return on_change


# ---- the daemon ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the daemon listens, checked before anything starts."""

    listen: Listen
    tls: TlsFiles | None
    api_host: str
    api_port: int
    api_token: str | None


def check_endpoints(listen: str, api: str, api_token_file: str | None,
                    tls: TlsFiles | None) -> Endpoints:
    """ValueError (bad input: exit 2) or OSError (address unusable: exit 1), with a message
    naming the option, before anything listens."""
    of = parse_listen(listen)
    check_tls(of, tls)
    api_host, api_port = parse_address(api, "--api")
    try:
        token = read_token(api_token_file)
    except TokenError as exc:
        raise ValueError(str(exc)) from None
    if token is None and not is_loopback(api_host):
        raise ValueError(
            f"--api {api}: the status API would be reachable from other machines without "
            f"a token; give one (--api-token-file FILE or {TOKEN_ENV}=...) or listen on "
            "127.0.0.1")
    if api_token_file and loosely_protected(api_token_file):
        log.warning("%s can be read by other users (chmod 600 it)", api_token_file)
    check_bindable(of.host, of.port, "OpenFlow")
    check_bindable(api_host, api_port, "the status API")
    return Endpoints(of, tls if of.scheme == "ssl" else None, api_host, api_port, token)


def run_daemon(
    policy_path: str,
    topology_path: str,
    listen: str = DEFAULT_LISTEN,
    ovsdb: str = DEFAULT_OVSDB,
    api: str = DEFAULT_API,
    watch_interval_s: float | None = DEFAULT_INTERVAL_S,
    api_token_file: str | None = None,
    tls: TlsFiles | None = None,
    stats_interval_s: float | None = DEFAULT_STATS_INTERVAL_S,
    etcd: str | None = None,
    etcd_prefix: str = DEFAULT_ETCD_PREFIX,
    replica_id: str | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (exit 0); bad input exits 2, an unusable address 1.

    `watch_interval_s`: how often to poll the two files for edits; None: only on SIGHUP.
    `api_token_file`: the API token (else $SDNCTL_API_TOKEN); needed to serve the API
    beyond loopback. `tls`: key, certificate and CA for `listen="ssl:HOST:PORT"`.
    `stats_interval_s`: how often to read flow stats for the drop counters (None: never).
    `etcd`: `http://HOST:PORT` of etcd, to run as one of several replicas (sdnctl/ha/);
    `replica_id` names this one there (default HOSTNAME:API-PORT).
    """
    setup_logging()
    started_at, started_wall = time.monotonic(), time.time()
    # First thing: SIGHUP's default action kills. Until the watcher exists a SIGHUP is
    # only remembered (its baseline is the versions read below, so an edit made
    # meanwhile is picked up anyway).
    watcher: FileWatcher | None = None
    hup: list[int] = []
    signal.signal(signal.SIGHUP, lambda signum, _f: watcher.trigger() if watcher
                  else hup.append(signum))
    # One read per file: what is validated, hashed and shown by GET /policy is the same.
    policy_file, topology_file = read_version(policy_path), read_version(topology_path)
    reads = SourceReads()  # kept for the reloads: an edit is re-read at its own cost
    try:
        sources = load_sources(policy_file, topology_file, reads)
    except LoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    policy, topology = sources.policy, sources.topology
    try:
        ends = check_endpoints(listen, api, api_token_file, tls)
        if etcd is not None:
            parse_etcd_url(etcd)
    except ValueError as exc:
        print(f"sdnctl run: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
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
    configure_os_ken(cfg.CONF, ends.listen, ends.tls)

    # A plain flag: a handler taking a lock the interrupted main thread holds would deadlock.
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _f: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _f: stopping.append(signum))
    monitor = OvsdbMonitor(ovsdb, policy, topology)
    monitor.start()
    now = time.time()
    info = PolicyInfo(policy_file.path, policy_file.sha256, now, policy_file.text(),
                      policy_file.mtime)
    topo_info = PolicyInfo(topology_file.path, topology_file.sha256, now, topology_file.text(),
                           topology_file.mtime)
    # No binding known and nothing compiled yet: /status says so (bindings_ready false,
    # daemon.startup.phase) from the first second, however long the start-up takes.
    state = ControllerState(policy, topology, info, None, started_at, topology_info=topo_info)
    state.bindings_ready = False
    state.rebind = monitor.rebind
    startup = Startup(started_at)
    state.daemon_info = {
        "started_at": started_wall, "listen": str(ends.listen), "tls": ends.tls is not None,
        "api": f"{ends.api_host}:{ends.api_port}", "api_token": ends.api_token is not None,
        "ovsdb": ovsdb, "startup": startup.doc,
    }
    election = None
    manager = AppManager.get_instance()
    apps: list[ControllerApp] = []  # the app, once os-ken has started it
    api_server: WSGIServer | None = None
    poller: Ticker | None = None
    try:
        if etcd is not None:  # campaign from now on: the app asks for roles from the start
            election = start_election(etcd, etcd_prefix,
                                      replica_id or f"{socket.gethostname()}:{ends.api_port}",
                                      f"{ends.api_host}:{ends.api_port}",
                                      Revision(policy_file.sha256, topology_file.sha256))
            state.ha = election
            state.daemon_info["etcd"] = etcd
        if ends.tls is not None:  # os-ken refuses a bad certificate silently: count, log
            watch_handshakes(HandshakeWatch(on_refused=state.counters.tls_refusal))
        api_server = start_api(state, ends.api_host, ends.api_port, ends.api_token,
                               read_switch=late_reader(apps),
                               metrics=lambda: render_metrics(state))

        ready = wait_for_bindings(monitor, stopping)
        if stopping:
            return 0
        if not ready:
            log.warning("no answer from OVSDB %s yet: switches are left as they are until it "
                        "answers", ovsdb)
        with state.lock:
            state.snapshot = monitor.snapshot()
            state.bindings_ready = ready
        startup.reached("compiling", bindings_s=startup.since() if ready else None,
                        bound=len(state.snapshot.bindings.ports))

        # The start-up compile, before os-ken: nothing else writes to `state` until the
        # app exists, so it runs without the lock and /status keeps answering meanwhile.
        # The app's own first recompile then finds nothing changed.
        if not run_until(lambda: state.recompile(), "startup-compile", stopping,
                         f"compiling {len(topology.switches)} switches"):
            return 0
        compiled = state.last_compile or {}
        startup.reached("starting OpenFlow", compiled_s=startup.since(),
                        compile_ms=compiled.get("took_ms"),
                        switches=len(topology.switches),
                        flows=sum(sw.desired.n_flows for sw in state.switches.values()
                                  if sw.desired is not None))
        log.info("%d switches compiled in %.1f s (%d VMs bound)", len(topology.switches),
                 (compiled.get("took_ms") or 0) / 1000, len(state.snapshot.bindings.ports))

        def start_apps() -> None:
            # Threads inherit daemon-ness: started from here, os-ken's never outlive a stop.
            manager.load_apps(["apps.controller"])
            contexts = manager.create_contexts()
            manager.instantiate_apps(sdnctl_state=state, **contexts)

        # No time limit: os-ken has started when instantiate_apps returns, or failed when
        # it raises (a big network only makes the app's first recompile longer).
        try:
            if not run_until(start_apps, "os-ken-start", stopping, "starting os-ken"):
                return 0
        except Exception as exc:
            log.error("os-ken did not start", exc_info=exc)
            print(f"sdnctl run: os-ken did not start: {exc}", file=sys.stderr)
            return 1
        app = manager.applications["sdnctl"]
        apps.append(app)
        startup.reached("running", openflow_s=startup.since())
        monitor.subscribe(app.post_bindings)
        if election is not None:
            election.subscribe(app.post_ha)
        if monitor.wait_ready(0) and (not ready or monitor.snapshot() != state.snapshot):
            app.post_bindings(monitor.snapshot())  # came or changed while starting
        watcher = FileWatcher([policy_file, topology_file], reload_handler(app, reads),
                              watch_interval_s)
        watcher.start()
        if hup:
            watcher.trigger()
        poller = Ticker(stats_interval_s, app.poll_stats) if stats_interval_s else None
        watching = (f"watching the files every {watch_interval_s * 1000:.0f} ms"
                    if watch_interval_s else "reloading on SIGHUP only")
        scheme = "http" if ends.api_token is None else "http (token required)"
        state.record(
            "start",
            f"listening for OpenFlow on {ends.listen}, "
            f"status API on {scheme}://{ends.api_host}:{ends.api_port}, "
            f"{len(topology.switches)} switches, {len(policy.vms)} VMs, "
            f"{len(state.snapshot.bindings.ports)} bound, {watching}, "
            f"started in {startup.since():.1f} s",
        )
        while not stopping:
            time.sleep(0.2)
    finally:
        log.info("stopping")
        if election is not None:  # resign first: a follower takes over at once
            election.stop(resign=True)
        if poller is not None:
            poller.stop()
        if watcher is not None:
            watcher.stop()
        monitor.stop()
        if api_server is not None:
            api_server.shutdown()
            api_server.server_close()
        closer = threading.Thread(target=manager.close, name="os-ken-stop", daemon=True)
        closer.start()
        closer.join(3.0)  # os-ken's app threads end on close; do not hang if one does not
    log.info("stopped")
    return 0


# ---- start-up -----------------------------------------------------------------------


class Startup:
    """The start-up timeline, shown under `daemon.startup` in /status: the phase it is
    in, and when (seconds since the daemon started) each step ended."""

    def __init__(self, started_at: float) -> None:
        self._t0 = started_at
        # the files are read and validated by now (20,000 VMs: seconds, docs/benchmarks.md §6)
        self.doc: dict[str, object] = {"phase": "reading OVSDB", "loaded_s": self.since()}

    def since(self) -> float:
        return round(time.monotonic() - self._t0, 3)

    def reached(self, phase: str, **figures: object) -> None:
        self.doc.update(figures)  # one dict, updated in place: /status reads it as is
        self.doc["phase"] = phase
        if phase == "running":
            self.doc["running_s"] = self.since()


def wait_for_bindings(monitor: OvsdbMonitor, stopping: list[int],
                      connect_s: float = OVSDB_WAIT_S) -> bool:
    """Wait for the first full read of OVSDB: True once it is in.

    An OVSDB that does not answer within `connect_s` is not waited for (False: the
    switches are held until it answers). One that answered is waited for as long as
    it takes to send every row (thousands of interfaces take seconds), unless the
    connection drops. A stop signal ends the wait (False)."""
    deadline = time.monotonic() + connect_s
    next_note = time.monotonic() + 10.0
    while not monitor.wait_ready(0.1):
        now = time.monotonic()
        if stopping or (now > deadline and not monitor.connected):
            return False
        if now > next_note:
            log.info("still reading OVSDB %s", monitor.remote)
            next_note = now + 10.0
    return True


def run_until(fn: Callable[[], object], name: str, stopping: list[int], what: str) -> bool:
    """Run `fn` in a daemon thread and wait for it without a time limit, watching for a
    stop signal meanwhile: True when it returned, False on a stop (it is abandoned: the
    process is about to exit). Its exception, if any, is raised here."""
    done = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the caller
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    began = next_note = time.monotonic()
    while not done.wait(0.2):
        if stopping:
            log.info("stop requested while %s", what)
            return False
        if time.monotonic() > next_note + 30.0:
            next_note = time.monotonic()
            log.info("still %s (%.0f s)", what, next_note - began)
    if failure:
        raise failure[0]
    return True


def late_reader(apps: list[ControllerApp]) -> SwitchReader:
    """The API's live read of a switch: through the app once os-ken has started it."""

    def read(name: str, timeout_s: float) -> dict[str, object]:
        if not apps:
            raise SwitchReadError("503 Service Unavailable",
                                  "the daemon is starting: OpenFlow is not up yet")
        return apps[0].read_switch(name, timeout_s)

    return read


def start_election(etcd: str, prefix: str, replica: str, api: str,
                   revision: Revision) -> Election:
    """This replica's campaign, running (sdnctl/ha/election.py)."""
    from sdnctl.ha.election import Election
    from sdnctl.ha.etcd import EtcdStore

    election = Election(EtcdStore(etcd, prefix), replica, api)
    election.set_local(revision)
    election.start()
    log.info("replica %s: campaigning through etcd %s (prefix %s)", replica, etcd, prefix)
    return election


class Ticker:
    """Calls `fn` every `interval_s` from a daemon thread until stopped."""

    def __init__(self, interval_s: float, fn: Callable[[], object]) -> None:
        self._stop = threading.Event()
        self._interval = interval_s
        self._fn = fn
        threading.Thread(target=self._run, name="stats-poll", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._fn()
            except Exception:  # a failed tick must not end the ticking
                log.exception("periodic task failed")

    def stop(self) -> None:
        self._stop.set()


def add_run_arguments(ap: argparse.ArgumentParser) -> None:
    """The options `sdnctl run` and `python -m sdnctl.daemon` share (files excluded)."""
    ap.add_argument("--listen", default=DEFAULT_LISTEN, metavar="[tcp:|ssl:]HOST:PORT",
                    help=f"OpenFlow listener (default {DEFAULT_LISTEN}); ssl: needs the "
                    "three TLS options below")
    ap.add_argument("--ctl-privkey", metavar="KEY", help="controller private key (PEM), ssl:")
    ap.add_argument("--ctl-cert", metavar="CERT", help="controller certificate (PEM), ssl:")
    ap.add_argument("--ca-cert", metavar="CA", help="CA certificate(s) (PEM) the switches' "
                    "certificates must chain to, ssl:")
    ap.add_argument("--ovsdb", default=DEFAULT_OVSDB, help="OVSDB to watch for VM bindings "
                    f"(default {DEFAULT_OVSDB})")
    ap.add_argument("--api", default=DEFAULT_API, metavar="HOST:PORT",
                    help=f"status API (default {DEFAULT_API}); any address other than "
                    "loopback needs a token")
    ap.add_argument("--api-token-file", metavar="FILE",
                    help=f"API bearer token (default: ${TOKEN_ENV}); when set, every "
                    "request must carry it")
    ap.add_argument("--stats-interval", type=float, default=DEFAULT_STATS_INTERVAL_S,
                    metavar="S", help="seconds between flow-stats reads for the drop "
                    "counters (default %(default)s; 0: never)")
    ap.add_argument("--etcd", metavar="http://HOST:PORT",
                    help="run as one of several replicas: leadership through a lease in "
                    "this etcd; only the leader writes to the switches (default: the only "
                    "replica)")
    ap.add_argument("--etcd-prefix", default=DEFAULT_ETCD_PREFIX, metavar="PREFIX",
                    help="etcd keys of this group of replicas (default %(default)s)")
    ap.add_argument("--replica-id", metavar="NAME",
                    help="this replica's name in etcd and /status (default HOSTNAME:API-PORT)")


def tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The TLS options as given (None when none is); `check_tls` judges them."""
    given = (args.ctl_privkey, args.ctl_cert, args.ca_cert)
    if not any(given):
        return None
    return TlsFiles(*(g or "" for g in given))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sdnctl.daemon", description=__doc__.split("\n")[0])
    ap.add_argument("-p", "--policy", required=True)
    ap.add_argument("-t", "--topology", required=True)
    add_run_arguments(ap)
    ap.add_argument("--watch-interval", type=float, default=DEFAULT_INTERVAL_S,
                    help="seconds between checks of the files (default %(default)s)")
    ap.add_argument("--no-watch", action="store_true", help="reload on SIGHUP only")
    args = ap.parse_args(argv)
    interval = None if args.no_watch else args.watch_interval
    return run_daemon(args.policy, args.topology, args.listen, args.ovsdb, args.api, interval,
                      api_token_file=args.api_token_file, tls=tls_files(args),
                      stats_interval_s=args.stats_interval or None, etcd=args.etcd,
                      etcd_prefix=args.etcd_prefix, replica_id=args.replica_id)


if __name__ == "__main__":
    sys.exit(main())
