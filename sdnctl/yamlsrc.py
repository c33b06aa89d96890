"""Line-aware YAML reading, and the `file:line: message` problems both loaders report.

`load_yaml` is PyYAML's SafeLoader with three changes:

- every mapping is a `LineDict` and every sequence a `LineList`, which remember
  the (1-based) line of the mapping, of each key and of each item, so a loader
  can point at the exact line of whatever it refuses;
- a key repeated inside one mapping is an error (PyYAML keeps the last silently,
  which could quietly drop half of a policy);
- YAML 1.1 base-60 numbers are not resolved: unquoted `mac: 12:00:00:00:10:11`
  stays the string it looks like instead of becoming 9331200611. Numbers with a
  leading zero (`010`) also stay strings rather than silently turning octal.
  Decimal, `0x` hex and `0b` binary integers are read as usual.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"

# YAML 1.1 ints and floats, minus base 60 and leading-zero octal.
_INT_RE = re.compile(
    r"^(?:[-+]?0b[01][01_]*|[-+]?0x[0-9a-fA-F][0-9a-fA-F_]*|[-+]?(?:0|[1-9][0-9_]*))$"
)
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong (or suspicious) in a file, at a line (0: the file as a whole)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class LoadError(Exception):
    """Invalid input: every problem found, sorted by file, line and message."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers its own line and the line of each key."""

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}

    def key_line(self, key: Any) -> int:
        """The line of `key`; the mapping's own line for a key it does not have."""
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A YAML sequence that remembers its own line and the line of each item."""

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def item_line(self, index: int) -> int:
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


def _resolvers_without_base60() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    return {
        first: [(tag, rx) for tag, rx in pairs if tag not in (_INT_TAG, _FLOAT_TAG)]
        for first, pairs in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


class LineLoader(yaml.SafeLoader):
    """SafeLoader building LineDict/LineList; collects duplicate keys in `problems`."""

    yaml_implicit_resolvers = _resolvers_without_base60()

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.problems: list[Problem] = []

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            # An explicit tag on a value it cannot read (`!!int abc`, `!!bool maybe`)
            # makes PyYAML's constructors raise plain Python errors: give them a line.
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise ConstructorError(
                None, None, f"cannot read {node.value!r} as {tag}", node.start_mark
            ) from exc

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> LineDict:
        data = LineDict(node.start_mark.line + 1)
        self._fill_mapping(data, node, deep)
        return data

    def _fill_mapping(self, data: LineDict, node: yaml.Node, deep: bool) -> None:
        if not isinstance(node, yaml.MappingNode):
            raise ConstructorError(
                None, None, f"expected a mapping, found a {_kind(node)}", node.start_mark
            )
        own = {id(key_node) for key_node, _ in node.value}
        self.flatten_mapping(node)  # `<<` merges come first, so own keys override them
        own_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError as exc:
                raise ConstructorError(
                    "while reading a mapping", node.start_mark,
                    "found a key that is a mapping or a list", key_node.start_mark,
                ) from exc
            if id(key_node) in own:
                if key in own_lines:
                    self.problems.append(Problem(
                        self.source, line,
                        f"duplicate key {show_key(key)} (first on line {own_lines[key]})",
                    ))
                    continue
                own_lines[key] = line
            data[key] = self.construct_object(value_node, deep=deep)
            data.key_lines[key] = line

    def construct_line_map(self, node: yaml.Node) -> Iterator[LineDict]:
        data = LineDict(node.start_mark.line + 1)
        yield data  # yielded first so that anchors/aliases to it resolve
        self._fill_mapping(data, node, deep=False)

    def construct_line_seq(self, node: yaml.Node) -> Iterator[LineList]:
        data = LineList(node.start_mark.line + 1)
        yield data
        if not isinstance(node, yaml.SequenceNode):
            raise ConstructorError(
                None, None, f"expected a sequence, found a {_kind(node)}", node.start_mark
            )
        for child in node.value:
            data.append(self.construct_object(child))
            data.item_lines.append(child.start_mark.line + 1)


def _kind(node: yaml.Node) -> str:
    return type(node).__name__.removesuffix("Node").lower()  # scalar, sequence, mapping


LineLoader.add_implicit_resolver(_INT_TAG, _INT_RE, list("-+0123456789"))
LineLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_RE, list("-+0123456789."))
LineLoader.add_constructor(_MAP_TAG, LineLoader.construct_line_map)
LineLoader.add_constructor(_SEQ_TAG, LineLoader.construct_line_seq)


def _fast_line_loader() -> type[LineLoader] | None:
    """LineLoader on libyaml's parser, or None when PyYAML was built without libyaml."""
    try:
        from yaml._yaml import CParser
    except ImportError:  # PyYAML built without libyaml
        return None

    class _FastLineLoader(CParser, LineLoader):
        """LineLoader on libyaml's parser: the same constructors and resolvers, about
        10x faster on a large policy (a 5,000-VM file: seconds -> a few hundred ms)."""

        def __init__(self, text: str, source: str) -> None:
            CParser.__init__(self, text)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self.source = source
            self.problems: list[Problem] = []

    return _FastLineLoader


_FastLineLoader = _fast_line_loader()


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document; LoadError (with `source` and lines) if it is not valid YAML.

    Valid text goes through libyaml when it is there; anything it refuses is parsed
    again by the pure-Python loader, whose messages are the ones users see."""
    if _FastLineLoader is not None:
        fast = None
        try:
            yaml.reader.Reader(text)  # the same character check as the slow path
            fast = _FastLineLoader(text, source)
            data = fast.get_single_data()
            if not fast.problems:
                return data
        except (yaml.YAMLError, RecursionError):
            pass  # the slow path below says what is wrong, with its own wording
        finally:
            if fast is not None:
                fast.dispose()
    loader: LineLoader | None = None
    try:
        loader = LineLoader(text, source)  # checks for unprintable characters already
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise LoadError([_marked_problem(exc, source)]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
        message = f"invalid YAML: unacceptable character #x{char:04x}: {exc.reason}"
        raise LoadError([Problem(source, line, message)]) from None
    except yaml.YAMLError as exc:
        raise LoadError([Problem(source, 1, f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise LoadError([Problem(source, 1, "invalid YAML: nested too deeply")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if loader.problems:
        raise LoadError(loader.problems)
    return data


def try_load_yaml(text: str, source: str) -> tuple[bool, Any]:
    """(True, data) when `text` is one valid YAML document without duplicate keys,
    else (False, None): for callers that fall back to `load_yaml` on any doubt."""
    loader_class = _FastLineLoader if _FastLineLoader is not None else LineLoader
    loader = None
    try:
        yaml.reader.Reader(text)  # the character check `load_yaml` makes
        loader = loader_class(text, source)
        data = loader.get_single_data()
    except (yaml.YAMLError, RecursionError):
        return False, None
    finally:
        if loader is not None:
            loader.dispose()
    return (False, None) if loader.problems else (True, data)


def _marked_problem(exc: yaml.MarkedYAMLError, source: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.problem and exc.context and exc.context_mark is not None:
        message += f" ({exc.context} on line {exc.context_mark.line + 1})"
    return Problem(source, line, message)


def read_source(path: str | Path) -> str:
    """The text of a file; LoadError (line 0) if it cannot be read or is not UTF-8."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LoadError([Problem(str(path), 0, f"cannot read file: {exc.strerror}")]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise LoadError([Problem(str(path), line, "file is not valid UTF-8")]) from None


# Helpers shared by the loaders -------------------------------------------------------


def describe(value: Any) -> str:
    """A short, user-facing rendering of a YAML value for error messages."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return str(value)
    return f"a {type(value).__name__}"


def show_key(key: Any) -> str:
    return repr(key) if isinstance(key, str) else describe(key)


def is_int(value: Any) -> bool:
    """True for YAML integers (a bool is a Python int but never a number here)."""
    return isinstance(value, int) and not isinstance(value, bool)


class Report:
    """The problems found in one file so far."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.source, line, message))

    def raise_if_any(self) -> None:
        if self.problems:
            raise LoadError(self.problems)

    def top_level(self, data: Any, what: str, keys: Sequence[str], required: Sequence[str],
                  expected: str) -> LineDict | None:
        """A file's top-level mapping (keys checked, `version: 1`), or None when the
        file is empty or not a mapping (reported, naming what was `expected`)."""
        if data is None:
            self.add(1, f"{what}: the file is empty (expected {expected})")
            return None
        if not isinstance(data, LineDict):
            line = data.line if isinstance(data, LineList) else 1
            self.add(line, f"{what}: must be a mapping with keys {', '.join(keys)}, "
                           f"got {describe(data)}")
            return None
        self.check_keys(data, what, keys, required, 1)
        version = data.get("version")
        if "version" in data and (not is_int(version) or version != 1):
            self.add(data.key_line("version"),
                     f"{what}: version must be 1, got {describe(version)}")
        return data

    def check_keys(
        self,
        mapping: LineDict,
        where: str,
        allowed: Sequence[str],
        required: Sequence[str],
        line: int,
    ) -> None:
        """Report keys outside `allowed` (at their line) and missing `required` ones (at `line`)."""
        for key in mapping:
            if key not in allowed:
                self.add(mapping.key_line(key), f"{where}: {_unknown_key(key, allowed)}")
        for key in required:
            if key not in mapping:
                self.add(line, f"{where}: missing required key {key!r}")

    def mapping(self, value: Any, line: int, where: str, what: str) -> LineDict | None:
        """`value` if it is a mapping; an empty one for null; else report and None."""
        if value is None:
            return LineDict(line)
        if isinstance(value, LineDict):
            return value
        self.add(line, f"{where}: {what} must be a mapping, got {describe(value)}")
        return None

    def sequence(self, value: Any, line: int, where: str, what: str) -> LineList | None:
        """`value` if it is a list; an empty one for null; else report and None."""
        if value is None:
            return LineList(line)
        if isinstance(value, LineList):
            return value
        self.add(line, f"{where}: {what} must be a list, got {describe(value)}")
        return None

    def names(
        self, mapping: LineDict, where: str, what: str
    ) -> Iterator[tuple[str, Any, int]]:
        """(name, value, line) for each entry whose key is a usable name; report the rest."""
        for key, value in mapping.items():
            line = mapping.key_line(key)
            if not isinstance(key, str):
                hint = "; quote it" if key is None or isinstance(key, bool | int | float) else ""
                self.add(line, f"{where}: {what} names must be strings, got {describe(key)}{hint}")
            elif not key.strip():
                self.add(line, f"{where}: {what} names must not be empty")
            else:
                yield key, value, line


def _unknown_key(key: Any, allowed: Sequence[str]) -> str:
    message = f"unknown key {show_key(key)}"
    if isinstance(key, str):
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            message += f", did you mean {close[0]!r}?"
    return f"{message} (allowed: {', '.join(allowed)})"
