"""The core stays pure: no os-ken, pyroute2, ovs or subprocess anywhere in it."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "sdnctl"
CORE = ["policy", "topology", "compile", "verify", "dhcp", "pipeline.py", "flows.py", "diff.py",
        "bindings.py", "yamlsrc.py", "schema.py"]
FORBIDDEN = {"os_ken", "ryu", "pyroute2", "ovs", "subprocess", "mininet", "socket"}


def test_core_modules_import_no_effectful_library():
    offenders = []
    files = []
    for entry in CORE:
        path = PKG / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    assert len(files) > 10
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
