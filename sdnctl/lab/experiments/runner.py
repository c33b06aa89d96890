"""`sdnctl lab experiment NAME...`: one lab, the named experiments in turn, their figures.

Exit codes: 0 every experiment ran (its figures are printed, whatever they are;
the tests judge them); 1 an experiment failed to run; 2 bad input (files, names);
3 the lab itself could not be built or programmed; 128+N when stopped by signal N.
Whatever happens, everything the lab made is removed before returning.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdnctl.lab.experiments import DEFAULT_POLICY, DEFAULT_TOPOLOGY, NAMES, experiment
from sdnctl.lab.experiments.result import ExperimentResult, format_table
from sdnctl.lab.experiments.session import open_session, say
from sdnctl.lab.plan import LabError
from sdnctl.lab.session import Stopped, exit_code
from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology
from sdnctl.yamlsrc import LoadError

ALL = "all"


def resolve_names(names: Sequence[str]) -> list[str]:
    """`all` or experiment names, in the canonical order (vswitchd-restart last)."""
    wanted = set(NAMES) if ALL in names else set(names)
    unknown = sorted(wanted - set(NAMES))
    if unknown:
        raise ValueError(f"unknown experiment {', '.join(unknown)} (known: {', '.join(NAMES)},"
                         f" {ALL})")
    return [n for n in NAMES if n in wanted]


def run_experiments(
    names: Sequence[str],
    topology: str | Path = DEFAULT_TOPOLOGY,
    policy: str | Path = DEFAULT_POLICY,
    runs: int = 3,
    json_path: str | Path | None = None,
    prefix: str | None = None,
) -> int:
    try:
        chosen = resolve_names(names)
        if runs < 1:
            raise ValueError(f"--runs must be at least 1, got {runs}")
    except ValueError as exc:
        print(f"sdnctl lab experiment: {exc}", file=sys.stderr)
        return 2
    try:  # bad files are bad input (2), found before anything is built
        load_policy(policy, load_topology(topology))
    except LoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"sdnctl lab experiment: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    results: list[ExperimentResult] = []
    failed: list[str] = []
    started = time.time()
    try:
        # leader-kill's (and faults') switches dial two controllers; faults restarts an
        # OVSDB of the session's own.
        replicas = 2 if {"leader-kill", "faults"} & set(chosen) else 1
        with open_session(topology, policy, prefix, replicas,
                          ovsdb_relay="faults" in chosen) as session:
            for name in chosen:
                try:
                    result = experiment(name)(session, runs)
                except LabError as exc:  # includes CastError: the files lack a part
                    say(f"{name} failed: {exc}")
                    result = ExperimentResult(name, notes=[f"failed: {exc}"])
                    failed.append(name)
                print(result.format(), flush=True)
                results.append(result)
    except LoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except (LabError, OSError) as exc:
        say(f"the lab could not run: {exc}")
        return 3
    except (KeyboardInterrupt, Stopped) as exc:
        return exit_code(exc, say)
    except Exception:  # a bug or a surprise: say so; the lab is already torn down
        say(f"failed:\n{traceback.format_exc()}")
        return 3
    if len(results) > 1:
        print(format_table(results))
    if json_path is not None:
        write_json(json_path, results, {"topology": str(topology), "policy": str(policy),
                                        "runs": runs, "started": started,
                                        "took_s": round(time.time() - started, 1)})
        say(f"wrote {json_path}")
    return 1 if failed else 0


def write_json(path: str | Path, results: Sequence[ExperimentResult], meta: dict[str, Any]
               ) -> None:
    """The results as JSON and, next to them, their plots (sdnctl/render/experiments.py)."""
    doc = {**meta, "experiments": [r.to_json() for r in results]}
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")
    try:
        from sdnctl.render.experiments import write_experiment_plots

        drawn = write_experiment_plots(doc, path)
    except ModuleNotFoundError as exc:  # matplotlib: the render extra
        say(f"no plots: {exc.name} is missing (pip install 'sdnctl[render]')")
        return
    if drawn:
        say("plots: " + ", ".join(str(p) for p in drawn))
