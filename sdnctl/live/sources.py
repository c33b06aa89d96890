"""The daemon's two input files, read together: what is parsed is exactly what is hashed.

A `FileVersion` is one read of one file (its bytes, or why it could not be read).
`load_sources` validates a policy version against a topology version and raises
`LoadError` with every `file:line: message`, as the offline loaders do, so the
daemon reports a refused edit the way `sdnctl check` would. Given a `SourceReads`,
it re-reads an edited file at the cost of the edit, with the same result.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from sdnctl.policy.load import parse_policy
from sdnctl.policy.model import Policy
from sdnctl.policy.reread import PolicyRereader
from sdnctl.topology.load import parse_topology
from sdnctl.topology.model import Topology
from sdnctl.yamlsrc import LoadError, Problem


@dataclass(frozen=True, slots=True)
class FileVersion:
    """One read of a file: its bytes and mtime, or the reason it could not be read."""

    path: str
    data: bytes | None
    mtime: float | None = None
    error: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest() if self.data is not None else ""

    def text(self) -> str:
        """The file as UTF-8 text; LoadError (with a line) when unreadable or not UTF-8."""
        if self.data is None:
            raise LoadError([Problem(self.path, 0, f"cannot read file: {self.error}")])
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = self.data.count(b"\n", 0, exc.start) + 1
            raise LoadError([Problem(self.path, line, "file is not valid UTF-8")]) from None


def read_version(path: str | Path) -> FileVersion:
    """Read `path` once; never raises (an unreadable file is a version with an error)."""
    name = str(path)
    try:
        with open(name, "rb") as f:
            mtime = os.fstat(f.fileno()).st_mtime
            return FileVersion(name, f.read(), mtime)
    except OSError as exc:
        return FileVersion(name, None, None, exc.strerror or str(exc))


@dataclass(frozen=True, slots=True)
class Sources:
    """A validated policy and topology, with the file versions they came from."""

    policy: Policy
    topology: Topology
    policy_file: FileVersion
    topology_file: FileVersion


class SourceReads:
    """The last good reads of the daemon's files, so that an edit costs what it changed:
    the topology is parsed again only when its bytes changed, the policy through a
    `PolicyRereader` (which keeps its last good read across refused edits)."""

    def __init__(self) -> None:
        self.policies = PolicyRereader()
        self._topology: tuple[str, bytes, Topology] | None = None

    def topology(self, file: FileVersion) -> Topology:
        last = self._topology
        if last is not None and file.data is not None and last[:2] == (file.path, file.data):
            return last[2]
        topology = parse_topology(file.text(), file.path)
        if file.data is not None:
            self._topology = (file.path, file.data, topology)
        return topology


def load_sources(policy_file: FileVersion, topology_file: FileVersion,
                 reads: SourceReads | None = None) -> Sources:
    """Validate both versions; LoadError lists every problem (the policy is checked only
    against a valid topology: its `host`s must name switches of it)."""
    if reads is None:
        topology = parse_topology(topology_file.text(), topology_file.path)
        policy = parse_policy(policy_file.text(), policy_file.path, topology)
    else:
        topology = reads.topology(topology_file)
        policy = reads.policies.read(policy_file.text(), policy_file.path, topology)
    return Sources(policy, topology, policy_file, topology_file)
