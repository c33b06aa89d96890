"""`pip install sdnctl` is the controller and the command line: the lab's and the
pictures' libraries (pyproject.toml's `lab` and `render` extras) are imported only by
the commands that use them, and a missing one is named with the extra to install."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sdnctl.tools import EXTRAS

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = str(ROOT / "topologies/three-tier.topology.yaml")
POLICY = str(ROOT / "topologies/three-tier.policy.yaml")

# Runs `sdnctl ARGS` in this fresh interpreter, then prints which of the extras'
# libraries got imported, and the exit code.
PROBE = """
import json, sys
blocked = json.loads(sys.argv[1])
for name in blocked:  # as if the extra were not installed: importing it fails
    sys.modules[name] = None
from sdnctl.cli import main
try:
    code = main(sys.argv[3:])
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
               & set(json.loads(sys.argv[2])))
print(json.dumps({"code": code, "imported": heavy}))
"""


def sdnctl(*args: str, blocked: tuple[str, ...] = ()) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(blocked), json.dumps(sorted(EXTRAS)), *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize("args", [
    ("--help",),
    ("check", "-t", TOPOLOGY, "-p", POLICY),
    ("compile", "-t", TOPOLOGY, "-p", POLICY),
    ("run", "--help"),
])
def test_controller_commands_import_no_extra(args):
    result, stderr = sdnctl(*args)
    assert result["code"] in (0, None), stderr
    assert result["imported"] == []


def test_the_daemon_imports_no_extra():
    code = ("import sys, sdnctl.daemon, sdnctl.app.controller, sdnctl.api; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(EXTRAS)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


def test_a_missing_extra_is_named_with_the_extra(tmp_path):
    new = tmp_path / "new.policy.yaml"
    new.write_text(Path(POLICY).read_text())
    result, stderr = sdnctl("plan", "-t", TOPOLOGY, POLICY, str(new),
                            "--render", str(tmp_path / "plan.png"), blocked=("matplotlib",))
    assert result["code"] == 3
    assert "sdnctl plan: needs matplotlib: pip install 'sdnctl[render]'" in stderr
    assert "Traceback" not in stderr


def test_the_extras_hold_what_the_controller_does_not_need():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {d.split("=")[0].split(">")[0].lower() for d in project["dependencies"]}
    extras = project["optional-dependencies"]
    for library, extra in EXTRAS.items():
        assert library not in base
        assert any(d.lower().startswith(library) for d in extras[extra])
    assert "sdnctl[lab,render]" in extras["dev"]
