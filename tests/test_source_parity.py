"""The two statement splitters agree: rustpython-parser (src/stmts.rs) and the CPython-ast fallback
(hotswap/_source.py, used where rustpython-parser rejects valid source) give equal statements for every module
of the standard library, in every field the engine reads."""

from __future__ import annotations

import ast
import sys
import sysconfig
from pathlib import Path

import pytest

from hotswap import _native, _source

FIELDS = ("kind", "name", "text", "lineno", "end_lineno", "def_lineno", "def_text", "decorators", "binds", "reads",
          "calls_reloading", "defaults")


def _fields(stmt) -> tuple:
    values = tuple(getattr(stmt, field) for field in FIELDS)
    return values + (tuple(_fields(member) for member in stmt.members),)


def _first_difference(native, fallback, where: str):
    for field, a, b in zip(FIELDS + ("members",), _fields(native), _fields(fallback)):
        if a != b:
            if field == "members":
                for x, y in zip(native.members, fallback.members):
                    found = _first_difference(x, y, f"{where} > {x.name or x.lineno}")
                    if found:
                        return found
                return f"{where}: {len(native.members)} members != {len(fallback.members)}"
            return f"{where}: {field}: {a!r} != {b!r}"
    return None


def _stdlib_modules():
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))
    for package in sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        if package.name in ("test", "idlelib", "lib2to3", "site-packages", "tkinter", "turtledemo"):
            continue
        files += sorted(package.rglob("*.py"))
    return [f for f in files if "test" not in f.relative_to(root).parts[:-1]]


def test_both_splitters_agree_on_the_standard_library():
    compared, rejected, differences = 0, [], []
    for path in _stdlib_modules():
        try:
            text = _source.decode(path.read_bytes())
            tree = ast.parse(text, str(path))
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue  # not valid on this interpreter (lib2to3 test data and the like)
        try:
            native = _native.split_statements(text, str(path))
        except SyntaxError:
            rejected.append(path.name)  # newer syntax than rustpython-parser knows: the fallback's job
            continue
        lines = _source.source_lines(text)
        fallback = [_source._describe(node, text, lines) for node in tree.body]
        compared += 1
        if len(native) != len(fallback):
            differences.append(f"{path}: {len(native)} statements != {len(fallback)}")
            continue
        for a, b in zip(native, fallback):
            found = _first_difference(a, b, f"{path}:{a.lineno}")
            if found:
                differences.append(found)
    assert compared > 200, (compared, rejected)
    assert not differences, f"{len(differences)} differences, first ones:\n" + "\n".join(differences[:15])


def _plan_fields(plan) -> tuple:
    def members(plan):
        if plan is None:
            return None
        return (plan.unchanged, plan.changed, plan.old_bound, plan.statements,
                [(name, members(nested)) for name, nested in plan.nested])
    steps = [(s.index, s.old_index, s.action, s.reason, members(s.members)) for s in plan.steps]
    return steps, plan.removed, plan.rebound


def test_the_fallback_splitters_statements_are_planned_as_the_native_ones():
    old_src = ("import os\nLIMIT = 1\n\nclass C:\n    cache = {}\n    x = LIMIT\n    def m(self):\n        return 1\n"
               "    class Inner:\n        y = 1\n\ndef f(a=LIMIT):\n    return a\n")
    new_src = old_src.replace("LIMIT = 1", "LIMIT = 2").replace("return 1", "return 2").replace("import os\n", "")
    old = (old_src, _native.split_statements(old_src, "m.py"))
    native_stmts, native = _native.plan(new_src, "m.py", old)
    fallback_stmts, fallback = _native.plan(new_src, "m.py", old, statements=_source._fallback_split(new_src, "m.py"))
    assert [_fields(s) for s in fallback_stmts] == [_fields(s) for s in native_stmts]
    assert _plan_fields(fallback) == _plan_fields(native)
    assert [(s.index, s.action) for s in native.steps] == [(0, "run"), (1, "patch"), (2, "patch")]
    assert native.removed == ["os"]


def test_a_class_only_the_fallback_can_split_is_patched_member_by_member(modules):
    if sys.version_info < (3, 12):
        pytest.skip("nested same-quote f-strings are 3.12+ syntax")
    src = 'K = {"a": 1}\n\nclass C:\n    cache = {}\n\n    def m(self):\n        return f"{K["a"]}"\n'
    with pytest.raises(SyntaxError):
        _native.split_statements(src, "m.py")
    m = modules.load(src)
    C = m.C
    cache = C.cache
    cache["kept"] = True
    bound = C().m
    report = modules.edit(m, src.replace("return f", "return 'v' + f"))
    assert report.ok, report.error
    assert bound() == "v1" and m.C is C
    assert C.cache is cache and cache == {"kept": True}  # an unchanged member keeps its state
    assert "C.m" in report.patched
