"""Pausing Python's cyclic garbage collector while a large acyclic structure is built.

Compiling (and computing bindings) allocates many small objects, none of them in
cycles; the cyclic collector would rescan all of them over and over while finding
nothing to free. The collector is one per process, so a pause is process-wide while
it lasts; what this module guarantees is that it always ends:

- pauses are counted under a lock, so they nest and overlap across threads: the
  collector is off from the first pause's start to the last pause's end, and a
  pause ending early in one thread does not turn it back on under another;
- at the end it is left as it was found (a process that had it off keeps it off),
  also when the body raises.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_active = 0  # pauses in progress, all threads
_reenable = False  # the collector was on when the first of them began


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    global _active, _reenable
    with _lock:
        if _active == 0:
            _reenable = gc.isenabled()
            gc.disable()
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _reenable:
                gc.enable()
