"""Reachability matrices as heat maps (PNG or SVG through matplotlib).

Rows are sources, columns destinations, each cell lists the services that got
through. Two colourings: a lab report (measured against promised) and a plan
(what an edit adds, green, and removes, red).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

OK_OPEN = "#7fc97f"  # reached, as promised
OK_CLOSED = "#f0f0f0"  # denied, as promised
LEAK = "#e41a1c"  # reached although denied
BLOCKED = "#ff9f1c"  # denied although promised
ADDED = "#4daf4a"
REMOVED = "#e41a1c"
SELF = "#ffffff"


def _draw(
    names: list[str],
    colour: Mapping[tuple[str, str], str],
    text: Mapping[tuple[str, str], str],
    title: str,
    legend: list[tuple[str, str]],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    n = len(names)
    size = max(4.0, 1.1 * n + 1.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    for i, src in enumerate(names):
        for j, dst in enumerate(names):
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor=colour.get((src, dst), SELF),
                                   edgecolor="#999999", linewidth=0.5))
            label = text.get((src, dst), "")
            if label:
                ax.text(j + 0.5, i + 0.5, label, ha="center", va="center",
                        fontsize=max(5, 9 - n // 4), wrap=True)
    ax.set_xlim(0, n)
    ax.set_ylim(n, 0)
    ax.set_xticks([k + 0.5 for k in range(n)], names, rotation=45, ha="left")
    ax.set_yticks([k + 0.5 for k in range(n)], names)
    ax.xaxis.tick_top()
    ax.set_xlabel("to")
    ax.set_ylabel("from")
    ax.set_title(title, pad=40)
    ax.legend(handles=[Patch(facecolor=c, edgecolor="#999999", label=lbl) for lbl, c in legend],
              loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=len(legend), fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_lab_heatmap(probes: Iterable[Mapping[str, object]], path: str | Path,
                      title: str = "measured reachability") -> None:
    """`probes`: dicts with src, dst, service, reached, expected (the lab report's)."""
    reached: dict[tuple[str, str], list[str]] = defaultdict(list)
    state: dict[tuple[str, str], str] = {}
    names: set[str] = set()
    for p in probes:
        key = (str(p["src"]), str(p["dst"]))
        names.update(key)
        got, want = bool(p["reached"]), bool(p.get("expected", p["reached"]))
        if got:
            reached[key].append(str(p["service"]) + ("" if want else "!"))
        worst = LEAK if got and not want else BLOCKED if want and not got else None
        if worst:
            state[key] = LEAK if LEAK in (worst, state.get(key)) else worst
        else:
            state.setdefault(key, OK_OPEN if got else OK_CLOSED)
            if got and state[key] == OK_CLOSED:
                state[key] = OK_OPEN
    colour = dict(state)
    text = {k: "\n".join(v) for k, v in reached.items()}
    _draw(sorted(names), colour, text, title,
          [("reached as promised", OK_OPEN), ("denied as promised", OK_CLOSED),
           ("LEAK (marked !)", LEAK), ("BLOCKED", BLOCKED)], Path(path))


def write_plan_heatmap(added: Iterable[Iterable[str]], removed: Iterable[Iterable[str]],
                       vms: Iterable[str], path: str | Path) -> None:
    """What an edit adds (green) and removes (red), per VM pair."""
    text: dict[tuple[str, str], list[str]] = defaultdict(list)
    colour: dict[tuple[str, str], str] = {}
    for sign, rows, c in (("+", added, ADDED), ("-", removed, REMOVED)):
        for src, dst, service in (tuple(r) for r in rows):
            text[(src, dst)].append(f"{sign}{service}")
            colour[(src, dst)] = c if (src, dst) not in colour or colour[(src, dst)] == c \
                else BLOCKED  # both added and removed services: mixed
    _draw(sorted(set(vms)), colour, {k: "\n".join(v) for k, v in text.items()},
          "reachability an edit adds (+) and removes (-)",
          [("added", ADDED), ("removed", REMOVED), ("both", BLOCKED)], Path(path))
