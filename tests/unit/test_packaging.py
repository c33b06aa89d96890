"""What `pip install sdnctl` puts into site-packages: the `sdnctl` package and nothing
else at the top level (a package named `apps` there would collide with anyone's)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[2]


def test_only_the_sdnctl_package_is_installed() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(REPO), include=find["include"], exclude=find.get("exclude", ()))
    assert "sdnctl.app" in packages  # the daemon's os-ken app travels with it
    assert {p.split(".")[0] for p in packages} == {"sdnctl"}


def test_no_top_level_apps_folder_is_left_behind() -> None:
    assert not (REPO / "apps").exists()


def test_only_the_daemon_loads_the_os_ken_app() -> None:
    """sdnctl.app imports os-ken: the CLI, the API and the core must not pull it in."""
    import ast

    offenders = []
    for path in sorted((REPO / "sdnctl").rglob("*.py")):
        rel = path.relative_to(REPO / "sdnctl")
        if rel.parts[0] == "app" or rel == Path("daemon.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{rel}: {n}" for n in names if n.startswith("sdnctl.app")]
    assert offenders == []
