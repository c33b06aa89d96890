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
