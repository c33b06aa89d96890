"""Run Faucet (from its own venv) as a peer controller for a lab, and reload it.

Faucet 1.10 runs on os-ken 3.x, which sdnctl's venv does not have: it lives in
FAUCET_VENV (default /opt/faucet-venv, `pip install faucet`). Its `faucet` script
execs `osken-manager`, so that venv's bin goes first on PATH. Logs, the
exception log and the config go to a temp dir of the run; Prometheus listens on
127.0.0.1 at a free port. Reload = SIGHUP after rewriting the config (Faucet
then diffs old and new config and does a warm or a cold start per switch).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sdnctl.lab.names import LOCALHOST, free_port

FAUCET_VENV = Path(os.environ.get("FAUCET_VENV", "/opt/faucet-venv"))


def faucet_available() -> str | None:
    """None when Faucet can run here, else why not."""
    if not (FAUCET_VENV / "bin" / "faucet").exists():
        return f"no Faucet in {FAUCET_VENV} (python3 -m venv {FAUCET_VENV} && " \
               f"{FAUCET_VENV}/bin/pip install faucet)"
    return None


@dataclass
class Faucet:
    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # monotonic

    @property
    def config(self) -> Path:
        return self.workdir / "faucet.yaml"

    @property
    def log(self) -> Path:
        return self.workdir / "faucet.log"

    def write_config(self, doc: dict[str, Any]) -> None:
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
        tmp.replace(self.config)

    def start(self) -> None:
        env = dict(os.environ)
        env.update({
            "PATH": f"{FAUCET_VENV / 'bin'}:{env.get('PATH', '')}",
            "FAUCET_CONFIG": str(self.config),
            "FAUCET_LOG": str(self.log),
            "FAUCET_EXCEPTION_LOG": str(self.workdir / "faucet_exception.log"),
            "FAUCET_PROMETHEUS_ADDR": LOCALHOST,
            "FAUCET_PROMETHEUS_PORT": str(free_port()),
        })
        with open(self.workdir / "faucet.out", "wb") as out:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [str(FAUCET_VENV / "bin" / "faucet"), f"--ryu-ofp-tcp-listen-port={self.port}",
                 f"--ryu-ofp-listen-host={LOCALHOST}"],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def reload(self) -> float:
        """SIGHUP; the monotonic time it was sent."""
        assert self.proc is not None
        at = time.monotonic()
        self.proc.send_signal(signal.SIGHUP)
        return at

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def restarts(self, since_chars: int = 0) -> dict[str, int]:
        """Warm and cold starts Faucet logged after the first `since_chars` of its log,
        and switches it saw go down (a switch whose echo went unanswered while Faucet
        was busy disconnects, and Faucet cold-starts it when it reconnects)."""
        text = self.log_text()[since_chars:]
        counts = {kind: len(re.findall(rf"\b{kind} starting", text)) for kind in ("warm", "cold")}
        counts["dp_down"] = len(re.findall(r"datapath down", text))
        return counts

    def activity(self, since_chars: int = 0) -> int:
        """Log lines after `since_chars` other than host learning chatter, which
        goes on as long as traffic flows: a reload is over when this stops growing."""
        lines = self.log_text()[since_chars:].splitlines()
        return sum(1 for ln in lines if "L2 learned" not in ln and "expired" not in ln)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        self.proc = None


def wait_stable(count: Any, settle: float = 2.0, timeout: float = 60.0,
                poll: float = 0.1) -> tuple[int, float]:
    """Poll `count()` until it is non-zero and unchanged for `settle` seconds.

    Returns (the count, the monotonic time it last changed).
    """
    start = time.monotonic()
    last, changed_at = -1, start
    while time.monotonic() - start < timeout:
        now_count = count()
        now = time.monotonic()
        if now_count != last:
            last, changed_at = now_count, now
        elif now_count and now - changed_at >= settle:
            return last, changed_at
        time.sleep(poll)
    return last, changed_at
