"""What a continuous probe saw, and the figures the experiments read from it. Pure.

A `StreamLog` is every probe a sender sent (sequence number, send time) and the
answers it got (sequence number, answer time), all on `time.monotonic()`. A probe
is lost when no answer came: either direction may have dropped it, which is what
an application would notice. Times are send times: the network state that decided
a probe's fate is the one at (about) the moment it was sent.

Resolution: one probe interval (10 ms by default). A single lost probe shows up
as a window of one interval; zero lost probes means no outage longer than an
interval (a shorter one may slip between two probes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Gap:
    """A run of consecutive lost probes."""

    first_lost_t: float  # send time of the first lost probe
    resumed_t: float | None  # send time of the next answered probe (None: never resumed)
    lost: int

    @property
    def window_s(self) -> float | None:
        """From the first lost probe to the first answered one after it."""
        return None if self.resumed_t is None else self.resumed_t - self.first_lost_t


@dataclass(frozen=True, slots=True)
class StreamLog:
    interval: float
    sent: tuple[tuple[int, float], ...]  # (seq, send time), in order
    recv: dict[int, float] = field(default_factory=dict)  # seq -> answer time

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> StreamLog:
        sent = tuple((int(s), float(t)) for s, t in doc["sent"])  # type: ignore[union-attr]
        recv = {int(s): float(t) for s, t in doc["recv"]}  # type: ignore[union-attr]
        return cls(float(doc["interval"]), sent, recv)  # type: ignore[arg-type]

    def ok(self, seq: int) -> bool:
        return seq in self.recv

    def between(self, start: float | None = None, end: float | None = None
                ) -> Iterator[tuple[int, float, bool]]:
        """(seq, send time, answered) of the probes sent in [start, end)."""
        for seq, t in self.sent:
            if (start is None or t >= start) and (end is None or t < end):
                yield seq, t, seq in self.recv


def count_lost(log: StreamLog, start: float | None = None, end: float | None = None) -> int:
    return sum(1 for _s, _t, ok in log.between(start, end) if not ok)


def count_sent(log: StreamLog, start: float | None = None, end: float | None = None) -> int:
    return sum(1 for _ in log.between(start, end))


def gaps(log: StreamLog, start: float | None = None, end: float | None = None) -> list[Gap]:
    """Every run of lost probes sent in [start, end); a run still open at `end`
    is closed by the first answered probe after it, if any."""
    out: list[Gap] = []
    first: float | None = None
    lost = 0
    for _seq, t, ok in log.between(start, None):
        inside = end is None or t < end
        if not ok:
            if not inside:
                if first is None:
                    break
                continue  # an open run goes on past `end`: find where it resumes
            if first is None:
                first = t
            lost += 1
        elif first is not None:
            out.append(Gap(first, t, lost))
            first, lost = None, 0
            if not inside:
                break
        elif not inside:
            break
    if first is not None:
        out.append(Gap(first, None, lost))
    return out


def longest_window_s(found: Sequence[Gap], log: StreamLog) -> float:
    """The longest outage in `found` (0.0 if none); an unresumed one runs to the last probe."""
    last = log.sent[-1][1] if log.sent else 0.0
    return max(((g.window_s if g.window_s is not None else last - g.first_lost_t + log.interval)
                for g in found), default=0.0)


def first_ok_after(log: StreamLog, t0: float, end: float | None = None) -> float | None:
    """Seconds from t0 to the send time of the first answered probe sent at or after t0."""
    for _seq, t, ok in log.between(t0, end):
        if ok:
            return t - t0
    return None


def last_ok_after(log: StreamLog, t0: float, end: float | None = None) -> float:
    """Seconds from t0 to the send time of the last answered probe sent in [t0, end); 0.0
    when none got through after t0 (the flow was already stopped)."""
    last = 0.0
    for _seq, t, ok in log.between(t0, end):
        if ok:
            last = t - t0
    return last


def ok_after(log: StreamLog, t0: float, end: float | None = None) -> int:
    """Answered probes sent in [t0, end)."""
    return sum(1 for _s, _t, ok in log.between(t0, end) if ok)


def timeline(log: StreamLog, events: Sequence[tuple[float, str]] = (), bin_s: float = 0.1
             ) -> dict[str, object]:
    """Loss over time, for a plot: probes sent and lost per `bin_s` of send time from
    the first probe, and `events` (monotonic time, what happened) on that clock.

    >>> log = StreamLog(0.05, ((0, 10.0), (1, 10.05), (2, 10.1), (3, 10.15)), {0: 10.0, 3: 10.2})
    >>> timeline(log, [(10.05, "edit")])
    {'bin_s': 0.1, 'sent': [2, 2], 'lost': [1, 1], 'events': [[0.05, 'edit']]}
    """
    if not log.sent:
        return {"bin_s": bin_s, "sent": [], "lost": [], "events": []}
    t0 = log.sent[0][1]
    bins = int((log.sent[-1][1] - t0) / bin_s + 1e-9) + 1
    sent, lost = [0] * bins, [0] * bins
    for seq, t in log.sent:
        i = min(int((t - t0) / bin_s + 1e-9), bins - 1)
        sent[i] += 1
        lost[i] += seq not in log.recv
    return {"bin_s": bin_s, "sent": sent, "lost": lost,
            "events": [[round(t - t0, 3), what] for t, what in events]}
