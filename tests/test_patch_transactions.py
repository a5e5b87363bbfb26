"""Reloads are all or nothing: Ctrl-C during the native apply step, broken sources, and what a failure reports."""

from __future__ import annotations

import signal
import textwrap

import pytest

import hotswap
from conftest import DATACLASS_SOURCE
from hotswap import _native

SRC = """
    X = 1

    def f():
        return "old"

    def g():
        return "old"

    class C:
        def m(self):
            return "old"
"""
NEW = SRC.replace("X = 1", "X = 2").replace('"old"', '"new"')


def _state(m):
    return (m.X, m.f(), m.g(), m.C().m())


@pytest.mark.parametrize("interrupt_at", [1, 2])  # the batch before the class machinery; the last batch
def test_ctrl_c_during_the_apply_step_leaves_all_old_or_all_new(modules, monkeypatch, interrupt_at):
    m = modules.load(SRC)
    f, g, C = m.f, m.g, m.C
    real_apply = _native.apply
    calls = []

    def apply_then_interrupt(*args, **kwargs):
        result = real_apply(*args, **kwargs)
        calls.append(1)
        if len(calls) == interrupt_at:
            signal.raise_signal(signal.SIGINT)  # arrives as the native step returns
        return result

    monkeypatch.setattr(_native, "apply", apply_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        modules.edit(m, NEW)
    monkeypatch.setattr(_native, "apply", real_apply)
    state = (m.X, f(), g(), C().m())
    assert state in ((1, "old", "old", "old"), (2, "new", "new", "new")), state
    running = hotswap.running_source(m).decode()
    assert running == textwrap.dedent(NEW if state[0] == 2 else SRC)
    # The recorded baseline matches what runs: reloading the same file again finishes the edit.
    report = hotswap.reload(m)
    assert report.ok, report.error
    assert (m.X, f(), g(), C().m()) == (2, "new", "new", "new")


def test_source_with_a_nul_byte_gives_a_failed_report(modules):
    m = modules.load(SRC)
    f = m.f
    path = modules.path(m.__name__)
    path.write_bytes(textwrap.dedent(NEW).replace('return "new"', 'return "new"\0', 1).encode())
    report = hotswap.reload(m)
    assert not report.ok and "null bytes" in report.error and str(path) in report.error
    assert "line 5" in report.error
    assert f() == "old" and _state(m) == (1, "old", "old", "old")


def test_a_failed_report_names_the_type_the_whole_message_and_the_real_line(modules):
    m = modules.load(SRC)
    f = m.f
    broken = SRC + """
    def boom():
        raise ValueError("first line\\nsecond line")

    boom()
"""
    report = modules.edit(m, broken)
    assert not report.ok
    path = str(modules.path(m.__name__))
    assert f'File "{path}", line 17' in report.error and f'File "{path}", line 15' in report.error
    assert "ValueError: first line\nsecond line" in report.error
    assert report.summary().endswith("ValueError: first line / second line")
    assert f() == "old"


def test_a_failing_class_decorator_applied_by_the_reload_names_the_class_line(modules):
    src = DATACLASS_SOURCE
    m = modules.load(src)
    P = m.P
    bad = src.replace("x: int = 1", "x: int = 1\n            y: int")  # non-default after default
    report = modules.edit(m, bad)
    assert not report.ok
    path = str(modules.path(m.__name__))
    assert f'File "{path}", line 4' in report.error and "TypeError" in report.error
    assert report.summary().split(": ", 2)[-1].startswith("TypeError")
    assert [f.name for f in __import__("dataclasses").fields(P)] == ["x"] and P() == P(1)
