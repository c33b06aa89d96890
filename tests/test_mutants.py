"""The mutation run as part of the full suite (`./dev test`; about 80 s on a loaded
2-core machine): every curated compiler and simulator mutant of tests/mutate.py is
killed by some behavioural unit test. Outside the suite: `make mutate`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MUTATE = Path(__file__).resolve().parent / "mutate.py"


def test_every_curated_mutant_is_killed() -> None:
    done = subprocess.run([sys.executable, str(MUTATE)], capture_output=True, text=True,
                          timeout=900)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 not (none)" in done.stdout


def test_a_mutant_that_no_test_notices_survives(tmp_path) -> None:
    """The run can fail: a harmless edit (a comment) is reported as a survivor."""
    sys.path.insert(0, str(MUTATE.parent))
    try:
        import mutate
    finally:
        sys.path.remove(str(MUTATE.parent))
    harmless = mutate.Mutant("harmless", "sdnctl/compile/acl.py", "PRIO_RULE = 150",
                             "PRIO_RULE = 150  # a comment", "changes nothing")
    _, verdict, _ = mutate.judge(harmless)
    assert verdict.startswith("SURVIVED"), verdict
