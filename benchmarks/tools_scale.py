"""The offline tools on synthetic data centres: check, explain, plan and verify --offline.

    .venv/bin/python benchmarks/tools_scale.py                   # 1k, 5k, 20k; both placements
    .venv/bin/python benchmarks/tools_scale.py 5000 --placement scattered --json out.json
    .venv/bin/python benchmarks/tools_scale.py --baseline /tmp/old   # another sdnctl tree

Each tool runs as the operator runs it: the `sdnctl` command line in a process of
its own, on YAML files written from the data centres of sdnctl.bench.datacentre
(`packed`: tenants of 50 VMs on neighbouring hypervisors; `scattered`: tenants of
125 VMs spread over every hypervisor, the hostile case). Per run: wall time from
process start to exit (interpreter and imports included) and the process's peak
RSS. The commands:

- check:   `sdnctl check -p P -t T` (load, validate, lint)
- explain: `sdnctl explain -p P -t T --from t0vm0 --to t0vm1 --service tcp/8000`
           (load, compile every switch, one probe: a web VM to an app VM)
- plan:    `sdnctl plan -t T P P2` where P2 adds tcp/9090 to tenant t0's web -> app rule
- verify:  `sdnctl verify --offline -p P -t T --json` (load, compile, every class pair)

Plus the many-small-tenants case of the scale issue: `pairs` rows, N tenants of
two VMs on two hypervisors (one address plan for all), verify --offline only.

Sizes up to 5,000 VMs always run to the end. Above that, a run slower than
--max-seconds (default 180) is stopped and reported as such, and a tool whose
5,000-VM run took more than a quarter of that is not run at all (the larger
run would take at least 4x as long). Figures are printed, not asserted. JSON
goes to benchmarks/results/tools_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bench.datacentre import (  # noqa: E402
    PLACEMENTS,
    datacentre,
    policy_doc,
    topology_doc,
    two_vm_tenants,
)
from sdnctl.bench.report import print_table, write_json  # noqa: E402

TOOLS = ("check", "explain", "plan", "verify")
PAIR_TENANTS = (1000, 5000)


def _dump(doc: object, path: Path) -> Path:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    path.write_text(yaml.dump(doc, Dumper=dumper, sort_keys=False, default_flow_style=None,
                              width=100))
    return path


def write_files(where: Path, name: str, policy, topology) -> dict[str, Path]:
    doc = policy_doc(policy)
    files = {"policy": _dump(doc, where / f"{name}.policy.yaml"),
             "topology": _dump(topology_doc(topology), where / f"{name}.topology.yaml")}
    for rule in doc["tenants"]["t0"]["rules"]:  # the one-rule edit plan is asked about
        if (rule["from"], rule["to"]) in (("web", "app"), ("a", "b")):
            rule["allow"] = [*rule["allow"], "tcp/9090"]
    files["edited"] = _dump(doc, where / f"{name}.edited.policy.yaml")
    return files


def commands(files: dict[str, Path], pairs: bool) -> dict[str, list[str]]:
    p, t = str(files["policy"]), str(files["topology"])
    src, dst = ("t0a", "t0b") if pairs else ("t0vm0", "t0vm1")
    service = "tcp/80" if pairs else "tcp/8000"
    return {
        "check": ["check", "-p", p, "-t", t],
        "explain": ["explain", "-p", p, "-t", t, "--from", src, "--to", dst,
                    "--service", service],
        "plan": ["plan", "-t", t, p, str(files["edited"])],
        "verify": ["verify", "--offline", "-p", p, "-t", t, "--json"],
    }


def run(cli: list[str], env: dict[str, str], args: list[str], limit: float | None
        ) -> dict[str, object]:
    """One command in a process of its own: wall seconds, exit code, output. It runs
    in the directory of the sdnctl tree on PYTHONPATH, if any (`-m` puts the current
    directory first)."""
    started = time.perf_counter()
    cwd = env.get("PYTHONPATH", "").split(os.pathsep)[0] or None
    proc = subprocess.Popen([*cli, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the wrapper and the command it runs
        proc.communicate()
        return {"s": None, "rss_mb": None, "status": f"stopped after {limit:.0f} s"}
    wall = time.perf_counter() - started
    return {"s": round(wall, 2), "rss_mb": None, "code": proc.returncode,
            "out": out.decode(errors="replace"), "err": err.decode(errors="replace")[-2000:]}


def run_measured(cli: list[str], env: dict[str, str], args: list[str], limit: float | None
                 ) -> dict[str, object]:
    """`run` with the command's own peak RSS: a small wrapper process runs it and
    reports its only child's maximum resident set size."""
    probe = ("import resource, subprocess, sys, json; "
             "r = subprocess.run(sys.argv[1:]); "
             "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
             "sys.stderr.write('\\nRSS_KB=' + str(u.ru_maxrss) + '\\n'); sys.exit(r.returncode)")
    got = run([sys.executable, "-c", probe, *cli], env, args, limit)
    err = str(got.get("err", ""))
    if "RSS_KB=" in err:
        got["rss_mb"] = round(int(err.rsplit("RSS_KB=", 1)[1].split()[0]) / 1024, 1)
        got["err"] = err.rsplit("RSS_KB=", 1)[0].rstrip()
    return got


def measure(files: dict[str, Path], tools: tuple[str, ...], cli: list[str],
            env: dict[str, str], limit: float | None, pairs: bool) -> dict[str, object]:
    out: dict[str, object] = {}
    for tool, args in commands(files, pairs).items():
        if tool not in tools:
            continue
        got = run_measured(cli, env, args, limit)
        row: dict[str, object] = {k: got.get(k) for k in ("s", "rss_mb", "status", "code")}
        text = str(got.get("out", ""))
        if tool == "verify" and got.get("s") is not None:
            try:
                report = json.loads(text)
                row["ok"] = report["ok"]
                row.update({k: report["figures"].get(k) for k in (
                    "vms", "classes", "class_pairs", "probes", "injections", "simulate_s")})
            except (ValueError, KeyError):
                row["status"] = "no JSON: " + str(got.get("err", ""))[-200:]
        elif tool == "plan" and got.get("s") is not None:
            row["summary"] = text.strip().splitlines()[-1] if text.strip() else ""
        elif tool == "explain" and got.get("s") is not None:
            row["summary"] = next((ln for ln in text.splitlines() if ln.startswith("verdict")),
                                  "")
        if got.get("code") not in (0, 1, None):
            row["status"] = f"exit {got.get('code')}: {str(got.get('err', ''))[-300:]}"
        out[tool] = row
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[1000, 5000, 20000])
    ap.add_argument("--placement", choices=[*PLACEMENTS, "both"], default="both")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help=f"comma-separated subset of {', '.join(TOOLS)}")
    ap.add_argument("--pair-tenants", type=int, nargs="*", default=list(PAIR_TENANTS),
                    help="tenants of two VMs for the small-tenant rows (none: skip them)")
    ap.add_argument("--max-seconds", type=float, default=180.0,
                    help="above 5,000 VMs, stop a run after this long (default 180); "
                    "0: no limit")
    ap.add_argument("--hard-limit", type=float, metavar="SECONDS",
                    help="stop every run after this long, whatever the size (baselines "
                    "that do not finish)")
    ap.add_argument("--baseline", metavar="DIR",
                    help="run the sdnctl tree in DIR (e.g. from `git archive`) instead")
    ap.add_argument("--json", help="write the results here (default benchmarks/results/)")
    args = ap.parse_args()
    tools = tuple(t for t in args.tools.split(",") if t)
    placements = PLACEMENTS if args.placement == "both" else (args.placement,)
    limit = args.max_seconds or None
    env = dict(os.environ)
    cli = [sys.executable, "-m", "sdnctl.cli"]
    env.pop("PYTHONPATH", None)
    if args.baseline:  # no site: the editable install of this tree must not win
        cli = [sys.executable, "-S", "-m", "sdnctl.cli"]
        env["PYTHONPATH"] = os.pathsep.join([str(Path(args.baseline).resolve()),
                                             sysconfig.get_paths()["purelib"]])
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="tools_scale.") as tmp:
        cases = [(p, n, False) for p in placements for n in sorted(args.sizes)]
        cases += [("pairs", n, True) for n in sorted(args.pair_tenants or ())]
        slow: dict[tuple[str, str], float] = {}
        for placement, n, pairs in cases:
            if pairs:
                policy, topology = two_vm_tenants(n)
            else:
                policy, topology = datacentre(n, placement)
            files = write_files(Path(tmp), f"{placement}{n}", policy, topology)
            wanted = ("verify",) if pairs else tools
            skip = {t for t in wanted if n > 5000 and limit is not None
                    and slow.get((placement, t), 0.0) > limit / 4}
            print(f"{placement} {len(policy.vms)} VMs: {', '.join(wanted)}"
                  + (f" (skipping {', '.join(sorted(skip))})" if skip else ""), flush=True)
            got = measure(files, tuple(t for t in wanted if t not in skip), cli, env,
                          limit if n > 5000 else args.hard_limit, pairs)
            for t in skip:
                got[t] = {"status": f"skipped: {slow[(placement, t)]:.0f} s at 5,000 VMs"}
            for t, r in got.items():
                if n == 5000 and not pairs:
                    slow[(placement, t)] = float(r.get("s") or (limit or 0.0))
            rows.append({"placement": placement, "vms": len(policy.vms),
                         "tenants": len(policy.tenants),
                         "hypervisors": sum(1 for s in topology.switches.values()
                                            if s.role.value == "hypervisor"), **got})
    columns = [("placement", "placement"), ("vms", "VMs"), ("tenants", "tenants")]
    for t in tools:
        columns += [(f"{t}.s", f"{t} s"), (f"{t}.rss_mb", "MiB")]
    print_table(rows, columns, "the sdnctl command line, one process per run (wall s, peak RSS)")
    print_table([r for r in rows if isinstance(r.get("verify"), dict)],
                [("placement", "placement"), ("vms", "VMs"), ("verify.classes", "classes"),
                 ("verify.class_pairs", "class pairs"), ("verify.probes", "probes"),
                 ("verify.injections", "packets simulated"), ("verify.simulate_s", "simulate s"),
                 ("verify.ok", "ok")],
                "verify --offline: what it did")
    for r in rows:
        for t in TOOLS:
            status = r.get(t, {}).get("status") if isinstance(r.get(t), dict) else None
            if status:
                print(f"{r['placement']} {r['vms']} {t}: {status}")
    write_json("tools_scale", {"baseline": args.baseline, "rows": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
