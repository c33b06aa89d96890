"""libyaml's fast path reads exactly what the pure-Python loader reads, lines included."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sdnctl import yamlsrc
from tests.toolcheck import unavailable

FILES = sorted(Path("topologies").glob("*.yaml"))


def _slow(text: str):
    loader = yamlsrc.LineLoader(text, "x")
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _lines(value):
    """The value with every mapping's and list's remembered lines, for comparison."""
    if isinstance(value, yamlsrc.LineDict):
        return ("map", value.line, sorted(value.key_lines.items()),
                [(k, _lines(v)) for k, v in value.items()])
    if isinstance(value, yamlsrc.LineList):
        return ("seq", value.line, list(value.item_lines), [_lines(v) for v in value])
    return value


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_fast_and_slow_loaders_agree(path: Path) -> None:
    if yamlsrc._FastLineLoader is None:  # pip's PyYAML wheels bundle libyaml: a set-up bug
        unavailable("needs PyYAML with libyaml (yaml.CParser): pip's PyYAML wheel has it;"
                    " a PyYAML built from source needs libyaml-dev")
    text = path.read_text()
    fast = yamlsrc._FastLineLoader(text, "x")
    try:
        got = fast.get_single_data()
    finally:
        fast.dispose()
    assert _lines(got) == _lines(_slow(text))
    assert _lines(yamlsrc.load_yaml(text, "x")) == _lines(got)


def test_octal_and_base60_stay_strings_on_the_fast_path() -> None:
    data = yamlsrc.load_yaml("mac: 12:00:00:00:10:11\nzip: 010\nn: 0x10\n", "x")
    assert data == {"mac": "12:00:00:00:10:11", "zip": "010", "n": 16}


def test_errors_keep_the_pure_python_wording() -> None:
    with pytest.raises(yamlsrc.LoadError) as err:
        yamlsrc.load_yaml("a: 1\na: 2\n", "f.yaml")
    assert [str(p) for p in err.value.problems] == [
        "f.yaml:2: duplicate key 'a' (first on line 1)"]
    with pytest.raises(yamlsrc.LoadError) as err:
        yamlsrc.load_yaml("a: [1, 2\n", "f.yaml")
    slow = yaml.SafeLoader("a: [1, 2\n")
    with pytest.raises(yaml.MarkedYAMLError) as raw:
        slow.get_single_data()
    assert str(err.value.problems[0]).startswith("f.yaml:")
    assert str(raw.value.problem) in str(err.value.problems[0])
