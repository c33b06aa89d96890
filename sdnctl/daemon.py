"""`sdnctl run`: the controller daemon.

Loads and validates the policy and topology (refusing bad input with
`file:line: message` and exit code 2), then starts the OVSDB binding monitor, the
OpenFlow 1.3 listener with the controller app, the status API (HTTP/JSON) and a
watch on both files. An edit that validates is applied as a minimal diff per
switch; one that does not is refused (each `file:line: message` in the log and in
`/status` under `policy.last_refused`) and the last good policy stays enforced.
SIGHUP reloads both files at once (also with the watch off, `--no-watch`).
SIGTERM or SIGINT stops it cleanly with exit code 0.

`Daemon` owns the lifecycle: each part it starts registers its undo with one
`contextlib.ExitStack`, so a failure or a stop signal at any step of start-up
(a taken port, os-ken failing, ...) takes down what was already up, in reverse,
and a stop does the same once running: no thread, listening socket or switch
connection is left behind.

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
never-ending threads keeps the process alive after a stop; its listener and the
switches' connections are closed on stop (sdnctl/app/listener.py). With
OSKEN_HUB_TYPE=eventlet it refuses to start (see below). os-ken is imported only
inside `Daemon.start`, so importing this module (the CLI does) starts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnctl.api import SwitchReadError, start_api
from sdnctl.apitoken import ENV as TOKEN_ENV
from sdnctl.endpoints import Endpoints, check_endpoints
from sdnctl.ha.etcd import DEFAULT_PREFIX as DEFAULT_ETCD_PREFIX
from sdnctl.ha.etcd import parse_etcd_url
from sdnctl.ha.model import Revision
from sdnctl.live.connlimits import DEFAULT_TENANT_NAT_LIMIT, DEFAULT_VM_CONN_LIMIT, ConnLimits
from sdnctl.live.sources import SourceReads, Sources, load_sources, read_version
from sdnctl.live.uplinks import PROBE_EVERY_S
from sdnctl.live.watch import DEFAULT_INTERVAL_S, Change, FileWatcher
from sdnctl.metrics import render_metrics
from sdnctl.mirrorcmd import mirror_runner
from sdnctl.southbound.ipfix import DEFAULT_ACTIVE_TIMEOUT_S, IpfixExport, parse_collector
from sdnctl.startup import Startup, Ticker, run_until, wait_for_bindings
from sdnctl.tls import HandshakeWatch, Listen, TlsFiles, configure_os_ken
from sdnctl.yamlsrc import LoadError

if TYPE_CHECKING:  # these import os-ken: loaded by Daemon.start only
    from sdnctl.app.controller import ControllerApp
    from sdnctl.app.listener import Listeners
    from sdnctl.ha.election import Election
    from sdnctl.live.connlog import ConnectionLog
    from sdnctl.live.state import ControllerState
    from sdnctl.southbound.ovsdb import OvsdbMonitor

log = logging.getLogger("daemon")

DEFAULT_LISTEN = "0.0.0.0:6653"
DEFAULT_OVSDB = "unix:/var/run/openvswitch/db.sock"
DEFAULT_API = "127.0.0.1:8680"
DEFAULT_STATS_INTERVAL_S = 10.0  # flow-stats reads for the drop counters
DEFAULT_CONNLOG_MB = 10  # the connection log's file moves to FILE.1 past this
LISTEN_WAIT_S = 10.0  # for os-ken's listener to open, once its apps have started
DEFAULT_CONN_LIMITS = ConnLimits(DEFAULT_VM_CONN_LIMIT, DEFAULT_TENANT_NAT_LIMIT)


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
class DaemonConfig:
    """What `sdnctl run` was asked to do (see `run_daemon` for each option)."""

    policy_path: str
    topology_path: str
    listen: str = DEFAULT_LISTEN
    ovsdb: str = DEFAULT_OVSDB
    api: str = DEFAULT_API
    watch_interval_s: float | None = DEFAULT_INTERVAL_S
    api_token_file: str | None = None
    tls: TlsFiles | None = None
    stats_interval_s: float | None = DEFAULT_STATS_INTERVAL_S
    etcd: str | None = None
    etcd_prefix: str = DEFAULT_ETCD_PREFIX
    replica_id: str | None = None
    ipfix: IpfixExport | None = None
    conn_limits: ConnLimits = DEFAULT_CONN_LIMITS
    connection_log: str | None = None  # file of the connection log's JSON lines
    connection_log_mb: int = DEFAULT_CONNLOG_MB  # FILE moves to FILE.1 past this size


class StartupFailed(Exception):
    """Start-up cannot go on: `lines` say why (printed on stderr), `exit_code` is 2 for
    bad input and 1 for a resource the daemon cannot use."""

    def __init__(self, exit_code: int, *lines: str) -> None:
        super().__init__("; ".join(lines))
        self.exit_code = exit_code
        self.lines = lines


class Stopped(Exception):
    """A stop signal arrived during start-up."""


class Daemon:
    """The controller daemon: `start()` brings every part up in order, `stop()` takes
    down whatever was started, in reverse, whatever happened in between.

    Every part registers its own undo with one ExitStack as it starts (the OVSDB
    monitor, the etcd campaign, the OpenFlow listener, the status API, os-ken, the
    file watcher, the stats poll, the signal handlers), so an early exit or an
    error at any step is a normal exception that leaves nothing running. Use as
    `with Daemon(config) as daemon: daemon.wait()`."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.state: ControllerState | None = None
        self._stack = contextlib.ExitStack()
        self._stopping: list[int] = []  # signals received; a plain list: see _on_stop
        self._hup: list[int] = []  # SIGHUPs before the watcher exists
        self._watcher: FileWatcher | None = None
        self._app: ControllerApp | None = None
        # The last good reads, from the start-up read on: an edit is re-read at its cost.
        self._reads = SourceReads()
        self.started_at, self.started_wall = time.monotonic(), time.time()

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ---- the lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Everything up, or StartupFailed / Stopped with everything down again."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def wait(self) -> None:
        """Until SIGTERM or SIGINT."""
        while not self._stopping:
            time.sleep(0.2)

    def stop(self) -> None:
        """Undo what start() did, in reverse (safe to call more than once)."""
        if self.state is not None:
            log.info("stopping")
        self._stack.close()

    def _start(self) -> None:
        cfg, stack = self.config, self._stack
        self._handle_signals(stack)
        sources = self._load()
        ends = checked_endpoints(cfg)
        self._import_os_ken(ends)

        from sdnctl.app.listener import openflow_listener
        from sdnctl.southbound.ovsdb import OvsdbMonitor

        monitor = OvsdbMonitor(cfg.ovsdb, sources.policy, sources.topology)
        monitor.start()
        stack.callback(monitor.stop)
        state, startup = self._make_state(sources, ends, monitor)
        self._limit_connections(state)
        if cfg.ipfix is not None:
            self._export_ipfix(state, monitor, sources, cfg.ipfix)
        election = self._campaign(sources, ends) if cfg.etcd is not None else None
        state.daemon.ha = election
        watch = (HandshakeWatch(on_refused=state.counters.tls_refusal)
                 if ends.tls is not None else None)  # os-ken refuses a bad certificate silently
        listeners = stack.enter_context(openflow_listener(watch))
        self._serve_api(state, ends)
        ready = self._read_bindings(monitor, state, startup)
        self._compile(state, startup)
        app = self._start_os_ken(state, listeners, ends.listen)
        startup.reached("running", openflow_s=startup.since())
        monitor.subscribe(app.post_bindings)
        if election is not None:
            election.subscribe(app.post_ha)
        if monitor.wait_ready(0) and (not ready or monitor.snapshot() != state.snapshot):
            app.post_bindings(monitor.snapshot())  # came or changed while starting
        self._watch(sources, app)
        if election is not None:  # stopping, resign first: a follower takes over at once
            stack.callback(election.stop, resign=True)
        watching = (f"watching the files every {cfg.watch_interval_s * 1000:.0f} ms"
                    if cfg.watch_interval_s else "reloading on SIGHUP only")
        scheme = "http" if ends.api_token is None else "http (token required)"
        state.record(
            "start",
            f"listening for OpenFlow on {ends.listen}, "
            f"status API on {scheme}://{ends.api_host}:{ends.api_port}, "
            f"{len(sources.topology.switches)} switches, {len(sources.policy.vms)} VMs, "
            f"{len(state.snapshot.bindings.ports)} bound, {watching}, "
            f"started in {startup.since():.1f} s",
        )

    # ---- the steps ---------------------------------------------------------------
    def _load(self) -> Sources:
        """The two files, validated (StartupFailed, exit 2, with every problem)."""
        # One read per file: what is validated, hashed and shown by GET /policy is the same.
        policy_file = read_version(self.config.policy_path)
        topology_file = read_version(self.config.topology_path)
        try:
            return load_sources(policy_file, topology_file, self._reads)
        except LoadError as exc:
            raise StartupFailed(2, *(str(p) for p in exc.problems)) from None

    def _open_connection_log(self, state: ControllerState) -> ConnectionLog:
        """--connection-log: records also go to a file (sdnctl/live/connlog.py)."""
        from sdnctl.live.connlog import ConnectionLog

        cfg = self.config
        assert cfg.connection_log is not None
        state.connlog = ConnectionLog(Path(cfg.connection_log),
                                      max_bytes=cfg.connection_log_mb * 1024 * 1024)
        return state.connlog

    def _make_state(self, sources: Sources, ends: Endpoints,
                    monitor: OvsdbMonitor) -> tuple[ControllerState, Startup]:
        """What the app and the API share. No binding is known and nothing compiled yet:
        /status says so (bindings_ready false, daemon.startup.phase) from the first
        second, however long the start-up takes."""
        from sdnctl.live.state import ControllerState, PolicyInfo

        now = time.time()
        pol, topo = sources.policy_file, sources.topology_file
        info = PolicyInfo(pol.path, pol.sha256, now, pol.text(), pol.mtime)
        topo_info = PolicyInfo(topo.path, topo.sha256, now, topo.text(), topo.mtime)
        state = self.state = ControllerState(sources.policy, sources.topology, info, None,
                                             self.started_at, topology_info=topo_info)
        state.bindings_ready = False
        if self.config.connection_log is not None:
            self._stack.callback(self._open_connection_log(state).close)
        state.daemon.rebind = monitor.rebind
        state.daemon.ovsdb = monitor.health
        state.daemon.mirrors = monitor.mirrors
        startup = Startup(self.started_at)
        state.daemon.info = {
            "started_at": self.started_wall, "listen": str(ends.listen),
            "tls": ends.tls is not None, "api": f"{ends.api_host}:{ends.api_port}",
            "api_token": ends.api_token is not None, "ovsdb": self.config.ovsdb,
            "startup": startup.doc,
        }
        if self.config.etcd is not None:
            state.daemon.info["etcd"] = self.config.etcd
        return state, startup

    def _export_ipfix(self, state: ControllerState, monitor: OvsdbMonitor, sources: Sources,
                      export: IpfixExport) -> None:
        """IPFIX from every switch's bridge until the daemon stops (then removed)."""
        from sdnctl.southbound.ipfix import IpfixExporter

        exporter = IpfixExporter(self.config.ovsdb, export, sources.topology)
        exporter.start()
        self._stack.callback(exporter.stop)
        state.daemon.ipfix = exporter.status

        def rebind(policy: Any, topology: Any) -> Any:  # a reload: the switches may change
            exporter.set_topology(topology)
            return monitor.rebind(policy, topology)

        state.daemon.rebind = rebind

    def _limit_connections(self, state: ControllerState) -> None:
        """Conntrack zone limits per VM and per going tenant (sdnctl/live/connlimits.py),
        set on this machine's ovs-vswitchd: only with a local OVSDB (its switches are
        here), and taken back when the daemon stops."""
        limits = self.config.conn_limits
        if not (limits.vm or limits.tenant_nat):
            return
        if not self.config.ovsdb.startswith("unix:"):
            log.warning("connection limits not applied: OVSDB %s is not on this machine "
                        "(ovs-appctl reaches the local ovs-vswitchd only)", self.config.ovsdb)
            return
        from sdnctl.southbound.ctlimits import ZoneLimiter

        limiter = ZoneLimiter()
        self._stack.callback(limiter.stop)
        state.daemon.conn_limits, state.daemon.limiter = limits, limiter

    def _campaign(self, sources: Sources, ends: Endpoints) -> Election:
        """Campaign from now on (replicas): the app asks for roles from the start."""
        cfg = self.config
        assert cfg.etcd is not None
        election = start_election(cfg.etcd, cfg.etcd_prefix,
                                  cfg.replica_id or f"{socket.gethostname()}:{ends.api_port}",
                                  f"{ends.api_host}:{ends.api_port}",
                                  Revision(sources.policy_file.sha256,
                                           sources.topology_file.sha256))
        self._stack.callback(election.stop, resign=True)
        return election

    def _serve_api(self, state: ControllerState, ends: Endpoints) -> None:
        """The status API, listening from now on (its port is taken here, not checked)."""
        try:
            server = start_api(state, ends.api_host, ends.api_port, ends.api_token,
                               read_switch=self._read_switch,
                               metrics=lambda: render_metrics(state),
                               mirror=mirror_runner(state, self.config.ovsdb))
        except OSError as exc:
            raise StartupFailed(1, f"sdnctl run: cannot listen for the status API on "
                                f"{ends.api_host}:{ends.api_port}: {exc.strerror or exc}"
                                ) from None
        self._stack.callback(server.server_close)
        self._stack.callback(server.shutdown)

    def _read_bindings(self, monitor: OvsdbMonitor, state: ControllerState,
                       startup: Startup) -> bool:
        """OVSDB's first full read, if it answers (True); the switches are held if not."""
        ready = wait_for_bindings(monitor, self._stopping)
        self._check_stop()
        if not ready:
            log.warning("no answer from OVSDB %s yet: switches are left as they are until it "
                        "answers", self.config.ovsdb)
        with state.lock:
            state.snapshot = monitor.snapshot()
            state.bindings_ready = ready
        startup.reached("compiling", bindings_s=startup.since() if ready else None,
                        bound=len(state.snapshot.bindings.ports))
        return ready

    def _compile(self, state: ControllerState, startup: Startup) -> None:
        """The start-up compile, before os-ken: nothing else writes to `state` until the
        app exists, so it runs without the lock and /status keeps answering meanwhile.
        The app's own first recompile then finds nothing changed."""
        n = len(state.topology.switches)
        self._run(lambda: state.recompile(), "startup-compile", f"compiling {n} switches")
        compiled = state.last_compile or {}
        startup.reached("starting OpenFlow", compiled_s=startup.since(),
                        compile_ms=compiled.get("took_ms"), switches=n,
                        flows=sum(sw.desired.n_flows for sw in state.switches.values()
                                  if sw.desired is not None))
        log.info("%d switches compiled in %.1f s (%d VMs bound)", n,
                 (compiled.get("took_ms") or 0) / 1000, len(state.snapshot.bindings.ports))

    def _watch(self, sources: Sources, app: ControllerApp) -> None:
        """The file watcher (edits and SIGHUP) and the stats poll."""
        cfg = self.config
        watcher = FileWatcher([sources.policy_file, sources.topology_file],
                              reload_handler(app, self._reads), cfg.watch_interval_s)
        watcher.start()
        self._stack.callback(watcher.stop)
        self._watcher = watcher
        if self._hup:
            watcher.trigger()
        if cfg.stats_interval_s:
            self._stack.callback(Ticker(cfg.stats_interval_s, app.poll_stats).stop)
        # Gateways' next hops asked again (a router replaced, a reply lost).
        self._stack.callback(Ticker(PROBE_EVERY_S, app.probe_next_hops).stop)

    def _handle_signals(self, stack: contextlib.ExitStack) -> None:
        """SIGHUP reloads (until the watcher exists it is only remembered: its baseline is
        the versions read at start, so an edit made meanwhile is picked up anyway);
        SIGTERM and SIGINT stop. The previous handlers come back on stop."""
        for signum, handler in ((signal.SIGHUP, self._on_hup), (signal.SIGTERM, self._on_stop),
                                (signal.SIGINT, self._on_stop)):
            stack.callback(signal.signal, signum, signal.signal(signum, handler))

    def _on_hup(self, signum: int, _frame: object) -> None:
        if self._watcher is not None:
            self._watcher.trigger()
        else:
            self._hup.append(signum)

    def _on_stop(self, signum: int, _frame: object) -> None:
        # A plain append: a handler taking a lock the interrupted thread holds would deadlock.
        self._stopping.append(signum)

    def _check_stop(self) -> None:
        if self._stopping:
            raise Stopped()

    def _run(self, fn: Callable[[], object], name: str, what: str) -> None:
        if not run_until(fn, name, self._stopping, what):
            raise Stopped()

    def _import_os_ken(self, ends: Endpoints) -> None:
        # ovs.poller imports eventlet when installed, which then warns on every start.
        warnings.filterwarnings("ignore", message=r"(?s)\s*Eventlet is deprecated")
        from os_ken.lib import hub

        if hub.HUB_TYPE != "native":
            # Under OSKEN_HUB_TYPE=eventlet, hub.patch() (thread=True) makes eventlet patch
            # threads only, so the OVSDB poller's real select() stalls every green thread;
            # a full monkey_patch() left OpenFlow connections unaccepted. Refuse, not hang.
            raise StartupFailed(1, "sdnctl run: needs os-ken's native hub; unset OSKEN_HUB_TYPE")
        hub.patch()  # a no-op on the native hub
        from os_ken import cfg
        from os_ken.base import app_manager  # noqa: F401 (registers the options set below)

        cfg.CONF(args=[], project="os_ken", default_config_files=[])
        configure_os_ken(cfg.CONF, ends.listen, ends.tls)

    def _start_os_ken(self, state: ControllerState, listeners: Listeners,
                      listen: Listen) -> ControllerApp:
        from os_ken.base.app_manager import AppManager

        manager = AppManager.get_instance()
        self._stack.callback(close_os_ken, manager)  # also after a start that failed halfway

        def start_apps() -> None:
            # Threads inherit daemon-ness: started from here, os-ken's never outlive a stop.
            manager.load_apps(["sdnctl.app.controller"])
            contexts = manager.create_contexts()
            manager.instantiate_apps(sdnctl_state=state, **contexts)

        # No time limit: os-ken has started when instantiate_apps returns, or failed when
        # it raises (a big network only makes the app's first recompile longer).
        try:
            self._run(start_apps, "os-ken-start", "starting os-ken")
        except Stopped:
            raise
        except Exception as exc:
            log.error("os-ken did not start", exc_info=exc)
            raise StartupFailed(1, f"sdnctl run: os-ken did not start: {exc}") from None
        try:
            # os-ken listens from its own thread, just after the apps start: a port taken
            # since check_endpoints looked shows here, not as a daemon that runs deaf.
            if not listeners.wait_listening(LISTEN_WAIT_S):
                raise StartupFailed(1, f"sdnctl run: os-ken is not listening for OpenFlow on "
                                    f"{listen} after {LISTEN_WAIT_S:.0f} s")
        except OSError as exc:
            raise StartupFailed(1, f"sdnctl run: cannot listen for OpenFlow on {listen}: "
                                f"{exc.strerror or exc}") from None
        app: ControllerApp = manager.applications["sdnctl"]
        self._app = app
        return app

    def _read_switch(self, name: str, timeout_s: float) -> dict[str, object]:
        """The API's live read of a switch: through the app once os-ken has started it."""
        if self._app is None:
            raise SwitchReadError("503 Service Unavailable",
                                  "the daemon is starting: OpenFlow is not up yet")
        return self._app.read_switch(name, timeout_s)


def checked_endpoints(cfg: DaemonConfig) -> Endpoints:
    """The endpoints, or StartupFailed: 2 for a bad value, 1 for an address in use."""
    try:
        ends = check_endpoints(cfg.listen, cfg.api, cfg.api_token_file, cfg.tls)
        if cfg.etcd is not None:
            parse_etcd_url(cfg.etcd)
    except ValueError as exc:
        raise StartupFailed(2, f"sdnctl run: {exc}") from None
    except OSError as exc:
        raise StartupFailed(1, f"sdnctl run: {exc}") from None
    return ends


def close_os_ken(manager: Any) -> None:
    """Stop os-ken's apps; do not hang if one of its threads does not end."""
    closer = threading.Thread(target=manager.close, name="os-ken-stop", daemon=True)
    closer.start()
    closer.join(3.0)


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
    ipfix: IpfixExport | None = None,
    conn_limits: ConnLimits = DEFAULT_CONN_LIMITS,
    connection_log: str | None = None,
    connection_log_mb: int = DEFAULT_CONNLOG_MB,
) -> int:
    """Run until SIGTERM/SIGINT (exit 0); bad input exits 2, an unusable address 1.

    `watch_interval_s`: how often to poll the two files for edits; None: only on SIGHUP.
    `api_token_file`: the API token (else $SDNCTL_API_TOKEN); needed to serve the API
    beyond loopback. `tls`: key, certificate and CA for `listen="ssl:HOST:PORT"`.
    `stats_interval_s`: how often to read flow stats for the drop counters (None: never).
    `etcd`: `http://HOST:PORT` of etcd, to run as one of several replicas (sdnctl/ha/);
    `replica_id` names this one there (default HOSTNAME:API-PORT).
    `ipfix`: export IPFIX from every switch's bridge (sdnctl/southbound/ipfix.py).
    `conn_limits`: conntrack zone limits per VM and per tenant on the gateways
    (sdnctl/live/connlimits.py; 0 turns one off).
    `connection_log`: also write the connection log to this file, as JSON lines, moved
    to FILE.1 past `connection_log_mb` MB (sdnctl/live/connlog.py).
    """
    setup_logging()
    config = DaemonConfig(policy_path, topology_path, listen, ovsdb, api, watch_interval_s,
                          api_token_file, tls, stats_interval_s, etcd, etcd_prefix, replica_id,
                          ipfix, conn_limits, connection_log, connection_log_mb)
    daemon = Daemon(config)
    try:
        with daemon:
            daemon.wait()
    except StartupFailed as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return exc.exit_code
    except Stopped:
        log.info("stop requested during start-up")
    log.info("stopped")
    return 0


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
    ap.add_argument("--vm-conn-limit", type=_count, default=DEFAULT_VM_CONN_LIMIT,
                    metavar="N", help="connections each VM may have tracked at once, both "
                    "ways (its conntrack zone on its hypervisor; default %(default)s; 0: no "
                    "limit). Set with ovs-appctl on this machine's ovs-vswitchd: only with a "
                    "local --ovsdb")
    ap.add_argument("--tenant-nat-limit", type=_count, default=DEFAULT_TENANT_NAT_LIMIT,
                    metavar="N", help="NATed connections each tenant may have on a gateway "
                    "at once (its zone there; default %(default)s; 0: no limit)")
    ap.add_argument("--ipfix", metavar="IPV4:PORT", type=_collector,
                    help="export IPFIX flow records from every switch's bridge to this "
                    "collector (set in OVSDB by the daemon, removed when it stops; "
                    "observation domain = the low 32 bits of the switch's dpid, "
                    "interfaceName = the VM's interface)")
    ap.add_argument("--connection-log", metavar="FILE",
                    help="write the connection log (new connections of rules with `log: "
                    "true`, denied first packets of tenants with `log_denied: true`) to "
                    "FILE as JSON lines; the API's /connections and the dashboard show the "
                    "last 1,000 with or without it")
    ap.add_argument("--connection-log-mb", type=_positive, default=DEFAULT_CONNLOG_MB,
                    metavar="MB", help="FILE moves to FILE.1 (replacing it) past this size "
                    "(default %(default)s)")
    ap.add_argument("--ipfix-sampling", type=_positive, default=1, metavar="N",
                    help="export one packet in N (default 1: every packet, exact counts)")
    ap.add_argument("--ipfix-active-timeout", type=_positive,
                    default=DEFAULT_ACTIVE_TIMEOUT_S, metavar="S",
                    help="seconds a long flow is aggregated before its record is sent "
                    "(default %(default)s)")


def _collector(text: str) -> str:
    try:
        return parse_collector(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number from 0")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number from 1")
    return int(text)


def ipfix_export(args: argparse.Namespace) -> IpfixExport | None:
    """The IPFIX options as an export (None without --ipfix)."""
    if args.ipfix is None:
        return None
    return IpfixExport(args.ipfix, args.ipfix_sampling, args.ipfix_active_timeout)


def conn_limits(args: argparse.Namespace) -> ConnLimits:
    return ConnLimits(args.vm_conn_limit, args.tenant_nat_limit)


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
                      etcd_prefix=args.etcd_prefix, replica_id=args.replica_id,
                      ipfix=ipfix_export(args), conn_limits=conn_limits(args),
                      connection_log=args.connection_log,
                      connection_log_mb=args.connection_log_mb)


if __name__ == "__main__":
    sys.exit(main())
