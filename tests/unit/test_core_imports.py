"""The packages are layered, and the layering is checked here by reading every module.

Layers, lowest first (a module may import its own layer and the layers below it):

- core: the pure compiler and its data (policy, topology, compile, flows, diff,
  verify, ...): no os-ken, no sockets, no subprocesses, no lab or plotting library.
- adapters: what talks to the outside world for the layers above: the switches
  (southbound), etcd (ha), the daemon's HTTP API (client), pictures (render) and the
  table of programs sdnctl runs (tools).
- live: the running controller's state.
- daemon: the os-ken app, the daemon and its HTTP API.
- lab: the Mininet lab, the attacks, the experiments and the benchmarks' networks.
- cli: the command line.

Imports inside functions count too (a lazy import is still a dependency), and so do
those under `if TYPE_CHECKING:`. Besides the order, no two top-level packages may
import each other (a cycle within a layer is still a cycle).
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "sdnctl"

LAYERS: list[tuple[str, set[str]]] = [
    ("core", {"__init__", "addresses", "bindings", "compile", "dhcp", "diff", "flowjson", "flows",
              "gcpause", "icmp", "nd", "pipeline", "policy", "schema", "topology", "verify",
              "yamlsrc"}),
    ("adapters", {"client", "ha", "render", "southbound", "tools"}),
    ("live", {"live"}),
    ("daemon", {"api", "apitoken", "app", "daemon", "dashboard", "endpoints", "httpserver",
                "metrics", "mirrorcmd", "startup", "tls"}),
    ("lab", {"bench", "lab"}),
    ("cli", {"cli"}),
]
CORE = LAYERS[0][1]

# Libraries with effects (or a weight) the core must never pull in.
FORBIDDEN_IN_CORE = {"os_ken", "ryu", "eventlet", "pyroute2", "ovs", "subprocess", "socket",
                     "mininet", "scapy", "etcd3gw", "matplotlib"}
# Libraries of the optional extras (pyproject.toml), and the only packages that may use them.
EXTRA_LIBRARIES = {"scapy": {"lab"}, "mininet": {"lab", "bench"}, "matplotlib": {"render"}}

# Imports that go up a layer on purpose: (module, imported module) -> why. Empty today.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top(module: str) -> str:
    """The top-level package (or module) of sdnctl that `module` is in."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, anywhere in it, with relative imports made absolute."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                yield ".".join(base + ([node.module] if node.module else []))
            elif node.module:
                yield node.module


def _modules() -> list[Path]:
    files = sorted(PKG.rglob("*.py"))
    assert len(files) > 100
    return files


def layer_of(top: str) -> int:
    for rank, (_, members) in enumerate(LAYERS):
        if top in members:
            return rank
    raise AssertionError(f"sdnctl.{top} is in no layer: add it to LAYERS in {__file__}")


def layering_violations(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        module = _module_name(path)
        here = layer_of(_top(module))
        for imported in imports(path):
            if imported.split(".")[0] != "sdnctl" or (module, imported) in EXCEPTIONS:
                continue
            there = layer_of(_top(imported))
            if there > here:
                found.append(f"{module} ({LAYERS[here][0]}) imports {imported} "
                             f"({LAYERS[there][0]})")
    return found


def test_every_package_has_a_layer():
    for path in _modules():
        layer_of(_top(_module_name(path)))


def test_no_module_imports_a_higher_layer():
    assert layering_violations(_modules()) == []


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    """A core module importing the daemon is reported (the check is not vacuous)."""
    fake = tmp_path / "sdnctl"
    (fake / "flows").mkdir(parents=True)
    bad = fake / "flows" / "bad.py"
    bad.write_text("def f():\n    from sdnctl.daemon import run_daemon\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    assert layering_violations([bad]) == ["sdnctl.flows.bad (core) imports sdnctl.daemon (daemon)"]


def test_no_two_packages_import_each_other():
    edges: set[tuple[str, str]] = set()
    for path in _modules():
        src = _top(_module_name(path))
        for imported in imports(path):
            if imported.split(".")[0] == "sdnctl" and _top(imported) != src:
                edges.add((src, _top(imported)))
    assert sorted((a, b) for a, b in edges if (b, a) in edges) == []


def test_core_modules_import_no_effectful_library():
    offenders = []
    for path in _modules():
        if _top(_module_name(path)) in CORE:
            offenders += [f"{_module_name(path)}: {name}" for name in imports(path)
                          if name.split(".")[0] in FORBIDDEN_IN_CORE]
    assert offenders == []


def test_extras_libraries_stay_in_their_packages():
    offenders = []
    for path in _modules():
        top = _top(_module_name(path))
        offenders += [f"{_module_name(path)}: {name}" for name in imports(path)
                      if top not in EXTRA_LIBRARIES.get(name.split(".")[0], {top})]
    assert offenders == []


def test_mypy_checks_exactly_the_core():
    """`./dev test` runs `mypy --strict` on pyproject.toml's [tool.mypy] files: the core,
    no more and no less (a package added to the core is type-checked too)."""
    config = tomllib.loads((PKG.parent / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    paths = [Path(f) for f in config["files"]]
    assert all(p.parent == Path("sdnctl") for p in paths), paths
    assert {p.stem if p.suffix == ".py" else p.name for p in paths} == CORE
