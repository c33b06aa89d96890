"""Watch the daemon's input files: poll their stat, hash what changed, report it.

Polling a stat every 20 ms costs next to nothing and works on every filesystem
(inotify misses edits through bind mounts and network filesystems, and needs a
library). A file counts as changed when its (mtime, ctime, size, inode) moves *and*
its sha256 differs from the version last reported: a `touch` or a save of the same
text is not a change. ctime catches an edit that restores its mtime; inode catches
editors that save by rename.

A file is read only once it has settled (not modified in the last `settle_s`), so a
slow writer is not caught half-way with a truncated file that may happen to be
valid YAML. A file that disappears (an editor deleting before rewriting) is
reported only if it stays missing for `missing_s`.

`trigger()` forces a report of the current versions whether or not they changed
(SIGHUP). It only sets a flag, so a signal handler may call it. With
`interval_s=None` the files are not polled at all and only `trigger()` reloads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sdnctl.live.sources import FileVersion, read_version

log = logging.getLogger("watch")

DEFAULT_INTERVAL_S = 0.02
SETTLE_S = 0.05
MISSING_S = 0.5

_Stamp = tuple[int, int, int, int]  # mtime_ns, ctime_ns, size, inode
_UNKNOWN: _Stamp = (-1, -1, -1, -1)  # not stat()ed yet: the first tick compares contents


@dataclass(frozen=True, slots=True)
class Change:
    """The current version of every watched file, in the order they were given."""

    files: tuple[FileVersion, ...]
    changed: tuple[str, ...]  # paths whose content differs from the last report
    forced: bool  # asked for (SIGHUP), not necessarily a change
    detected_at: float  # time.monotonic() when the change was seen

    def describe(self) -> str:
        names = ", ".join(os.path.basename(p) for p in self.changed) or "nothing changed"
        return f"{'reload requested (SIGHUP)' if self.forced else 'file changed'}: {names}"


def _stamp(path: str) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


class FileWatcher:
    """Polls files in a daemon thread and calls `on_change(Change)` from that thread."""

    def __init__(
        self,
        versions: Sequence[FileVersion],
        on_change: Callable[[Change], None],
        interval_s: float | None = DEFAULT_INTERVAL_S,
        settle_s: float = SETTLE_S,
        missing_s: float = MISSING_S,
    ) -> None:
        # Baseline: the versions the caller loaded (not a fresh read), so an edit made
        # between the caller's read and start() is still reported.
        self._last = {v.path: v for v in versions}
        self._paths = [v.path for v in versions]
        self._stamps: dict[str, _Stamp | None] = {p: _UNKNOWN for p in self._paths}
        self._missing_since: dict[str, float] = {}
        self._on_change = on_change
        self._interval = interval_s
        self._settle = settle_s
        self._missing = missing_s
        self._forced = False  # set from a signal handler: a plain flag, no lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="file-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def trigger(self) -> None:
        """Report the current versions at the next tick (safe in a signal handler)."""
        self._forced = True

    # -- the loop ----------------------------------------------------------------
    def _run(self) -> None:
        tick = self._interval or 0.05  # without polling, still notice trigger() quickly
        while not self._stop.wait(tick):
            try:
                self.check()
            except Exception:  # a watcher that dies silently would stop all reloads
                log.exception("file watch failed; still watching")

    def check(self) -> Change | None:
        """One tick: report (and return) a change, if any. Public for tests."""
        forced, self._forced = self._forced, False
        now = time.monotonic()
        if forced:
            due = list(self._paths)
        elif self._interval:
            due = [p for p in self._paths if self._due(p, now)]
        else:
            due = []
        if not due:
            return None
        changed = []
        for path in due:
            self._stamps[path] = _stamp(path)
            version = read_version(path)
            if version.data != self._last[path].data:
                changed.append(path)
            self._last[path] = version
        if not changed and not forced:
            return None  # touched or rewritten with the same text
        change = Change(tuple(self._last[p] for p in self._paths), tuple(changed), forced, now)
        self._on_change(change)
        return change

    def _due(self, path: str, now: float) -> bool:
        """Has `path` moved since it was last read, and settled?"""
        stamp = _stamp(path)
        if stamp == self._stamps[path]:
            self._missing_since.pop(path, None)
            return False
        if stamp is None:
            first = self._missing_since.setdefault(path, now)
            return now - first >= self._missing
        self._missing_since.pop(path, None)
        return time.time() - stamp[0] / 1e9 >= self._settle
