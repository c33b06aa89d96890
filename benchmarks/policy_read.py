"""Re-reading an edited policy file: the full read vs the incremental re-read.

    .venv/bin/python benchmarks/policy_read.py             # 5k and 20k VMs, scattered
    .venv/bin/python benchmarks/policy_read.py 5000 --repeats 9 --json out.json

The data centre of sdnctl.bench.datacentre, scattered placement (tenants of 125
VMs spread over every hypervisor), written as the YAML a user would keep
(`yaml.safe_dump`, block style). For each size, in the same process:

- the full read (`parse_policy`: libyaml with line-aware constructors, then every
  check), the baseline;
- the re-read of one edit by `PolicyRereader`, primed with the file before the
  edit: a rule of a middle tenant gains a port, a VM added in the middle of
  `vms:`, a VM moved (its `host` changed), a comment line added;
- the same edit through the daemon's reload (`load_sources` with its
  `SourceReads`: the topology is reused, its bytes unchanged).

Each figure is a median over repeats (garbage collected before each; the
fastest re-read is shown too, the one least disturbed by other work); the
re-reader is reset to its primed state before each repeat. Every re-read is
checked against the full read of the same text (equal policy, same lines, same
order) and must have taken the incremental path. JSON goes to
benchmarks/results/policy_read.json.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bench.datacentre import datacentre, policy_doc, topology_doc  # noqa: E402
from sdnctl.bench.report import median, print_table, ratio, write_json  # noqa: E402
from sdnctl.live.sources import FileVersion, SourceReads, load_sources  # noqa: E402
from sdnctl.policy.load import parse_policy  # noqa: E402
from sdnctl.policy.model import Policy  # noqa: E402
from sdnctl.policy.reread import PolicyRereader  # noqa: E402
from sdnctl.topology.load import parse_topology  # noqa: E402

SOURCE = "datacentre.policy.yaml"


def _timed(fn: Callable[[], object], repeats: int,
           before: Callable[[], object]) -> tuple[float | None, float]:
    """(median, fastest) seconds: on a shared machine the fastest is the run that was
    not preempted, the median what a user sees."""
    took = []
    for _ in range(repeats):
        before()
        gc.collect()
        t0 = time.perf_counter()
        fn()
        took.append(time.perf_counter() - t0)
    return median(took), min(took)


def _edits(text: str, n_tenants: int) -> dict[str, str]:
    mid = f"t{n_tenants // 2}"
    tenant = text.index(f"\n  {mid}:\n")
    rule = text.index("      - tcp/8000-8100\n", tenant) + len("      - tcp/8000-8100\n")
    vm = text.index(f"\n  {mid}vm60:\n") + 1
    host = text.index("    host: ", vm)
    host_end = text.index("\n", host)
    new_vm = (f"  {mid}vmNEW:\n    tenant: {mid}\n    segment: db\n    mac: 02:00:00:ff:ff:01\n"
              f"    ip: 10.2.9.9\n    labels:\n      tier: db\n    host: hv3\n")
    return {
        "one rule gains a port": text[:rule] + "      - tcp/9000\n" + text[rule:],
        "a VM added": text[:vm] + new_vm + text[vm:],
        "a VM moved (host)": text[:host] + "    host: hv1" + text[host_end:],
        "a comment line": text[:vm] + "  # moved here for the migration\n" + text[vm:],
    }


def _shape(policy: Policy) -> object:
    return (policy, [t.line for t in policy.tenants.values()],
            [(vm.name, vm.line) for vm in policy.vms.values()])


def measure(n_vms: int, repeats: int) -> list[dict[str, object]]:
    policy, topology_model = datacentre(n_vms, "scattered")
    text = yaml.safe_dump(policy_doc(policy), sort_keys=False, width=200)
    topology_text = yaml.safe_dump(topology_doc(topology_model), sort_keys=False)
    topology = parse_topology(topology_text, "datacentre.topology.yaml")
    full, _ = _timed(lambda: parse_policy(text, SOURCE, topology), repeats, lambda: None)
    rows: list[dict[str, object]] = []
    for name, new in _edits(text, len(policy.tenants)).items():
        expected = _shape(parse_policy(new, SOURCE, topology))
        reader = PolicyRereader()
        reader.read(text, SOURCE, topology)
        primed = reader._last

        def reset(reader: PolicyRereader = reader, primed: object = primed) -> None:
            reader._last = primed  # type: ignore[assignment]

        def reread(reader: PolicyRereader = reader, new: str = new) -> None:
            reader.read(new, SOURCE, topology)

        incremental, fastest = _timed(reread, repeats, reset)
        reset()
        got = reader.read(new, SOURCE, topology)
        if reader.last_mode != "incremental" or _shape(got) != expected:
            raise SystemExit(f"{n_vms} VMs, {name}: {reader.last_mode} read, "
                             f"{'same' if _shape(got) == expected else 'DIFFERENT'} result")

        pfile = FileVersion(SOURCE, text.encode())
        tfile = FileVersion("datacentre.topology.yaml", topology_text.encode())
        reads = SourceReads()
        load_sources(pfile, tfile, reads)
        daemon_primed = (reads.policies._last, reads._topology)
        new_file = FileVersion(SOURCE, new.encode())

        def reset_daemon(reads: SourceReads = reads, primed: tuple = daemon_primed) -> None:
            reads.policies._last, reads._topology = primed

        def reload(reads: SourceReads = reads, new_file: FileVersion = new_file,
                   tfile: FileVersion = tfile) -> None:
            load_sources(new_file, tfile, reads)

        daemon, _ = _timed(reload, repeats, reset_daemon)
        rows.append({
            "vms": n_vms, "file_kib": round(len(text.encode()) / 1024), "edit": name,
            "full_ms": _ms(full), "reread_ms": _ms(incremental),
            "reread_best_ms": _ms(fastest), "reload_ms": _ms(daemon),
            "speedup": ratio(full, incremental),
        })
    return rows


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[5000, 20000])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", default=None, help="default benchmarks/results/policy_read.json")
    args = ap.parse_args()
    rows = [row for n in args.sizes for row in measure(n, args.repeats)]
    print_table(rows, [("vms", "VMs"), ("file_kib", "KiB"), ("edit", "edit"),
                       ("full_ms", "full read ms"), ("reread_ms", "re-read ms"),
                       ("reread_best_ms", "fastest"),
                       ("reload_ms", "daemon reload ms"), ("speedup", "speed-up")],
                title=f"policy re-read, scattered, medians of {args.repeats}")
    write_json("policy_read", {"repeats": args.repeats, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
