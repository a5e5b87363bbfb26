"""Before/after snippet modules (tests/snippets/<case>/): references captured before the edit see the new code.

Each case has ``before.py``, ``after.py`` and ``check.py`` with ``capture(module) -> refs`` and
``verify(module, refs)``. The benchmarks run the same cases against other reloaders (benches/correctness.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SNIPPETS = Path(__file__).parent / "snippets"
CASES = sorted(p.name for p in SNIPPETS.iterdir() if (p / "before.py").exists())


def load_check(case: str):
    spec = importlib.util.spec_from_file_location(f"snippet_check_{case}", SNIPPETS / case / "check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    return check


@pytest.mark.parametrize("case", CASES)
def test_snippet(modules, case):
    check = load_check(case)
    m = modules.load((SNIPPETS / case / "before.py").read_text())
    refs = check.capture(m)
    report = modules.edit(m, (SNIPPETS / case / "after.py").read_text())
    assert report.ok, report.error
    check.verify(m, refs)
