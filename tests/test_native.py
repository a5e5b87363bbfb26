"""The native module directly: the transactional apply step, the statement splitter, the plan, the sweep."""

from __future__ import annotations

import pytest

from hotswap import _native


def _make(src: str, name: str):
    ns: dict = {}
    exec(src, ns)
    return ns[name]


def test_apply_is_all_or_nothing():
    f = _make("def f():\n    return 1\n", "f")
    donor = _make("def f():\n    return 2\n", "f")

    class C:
        x = 1

    d = {"k": 1}
    ops = [
        _native.PatchFunction(f, donor.__code__, None, (), None, {}, "doc"),
        _native.SetAttr(C, "x", 2),
        _native.SetItem(d, "k", 2),
        _native.DelItem(d, "missing-is-fine"),
        # Fails: a code object's co_name must be a str.
        _native.SetAttr(donor.__code__, "co_name", 1),
    ]
    with pytest.raises(AttributeError):
        _native.apply(ops)
    assert f() == 1 and f.__doc__ is None and C.x == 1 and d == {"k": 1}
    assert _native.apply(ops[:4]) == 4
    assert f() == 2 and f.__doc__ == "doc" and C.x == 2 and d == {"k": 2}


def test_apply_sets_closure_before_code_for_new_free_variables():
    f = _make("def f():\n    return 0\n", "f")
    donor = _make("def outer():\n    n = 7\n    def f():\n        return n\n    return f\n", "outer")()
    for _ in range(3000):
        f()
    _native.apply([_native.PatchFunction(f, donor.__code__, donor.__closure__, None, None, {}, None)])
    assert f() == 7


def test_apply_rejects_malformed_ops():
    with pytest.raises(TypeError, match="a patch op must be"):
        _native.apply([("setattr", object, "x", 1)])
    with pytest.raises(TypeError, match="Python function"):
        _native.PatchFunction(len, (lambda: 0).__code__, None, None, None, {}, None)


def test_class_setattr_bypasses_metaclass_setattr():
    class Meta(type):
        def __setattr__(cls, name, value):
            raise AttributeError("guarded")

    class C(metaclass=Meta):
        x = 1

    _native.apply([_native.SetAttr(C, "x", 2)])
    assert C.x == 2


def test_cell_op_and_undo():
    outer = _make("def outer():\n    v = 1\n    def f():\n        return v\n    return f\n", "outer")
    f = outer()
    cell = f.__closure__[0]
    _native.apply([_native.SetCell(cell, 10)])
    assert f() == 10
    with pytest.raises(TypeError):
        _native.apply([_native.SetCell(cell, 20), "explode"])
    assert f() == 10


def test_plan_splits_and_plans_in_one_call():
    old_src = "X = 1\ndef f():\n    return X\n"
    old = _native.split_statements(old_src, "m.py")
    new, plan = _native.plan("X = 2\ndef f():\n    return X\n", "m.py", (old_src, old))
    assert [(s.kind, s.name, s.lineno) for s in new] == [("other", None, 1), ("def", "f", 2)]
    assert new[1] is old[1]  # a statement the edit did not reach is reused, not parsed again
    assert [(s.index, s.action, s.reason) for s in plan.steps] == [(0, "run", "new")]
    assert plan.rebound == ["X"]
    with pytest.raises(SyntaxError) as info:
        _native.plan("def f(:\n", "m.py", (old_src, old))
    assert info.value.filename == "m.py" and info.value.lineno == 1


def test_plan_takes_statements_split_elsewhere():
    # The fallback splitter's statements go through the same planner; the source is not parsed again.
    old_src = "class C:\n    x = 1\n    def m(self):\n        return 1\n"
    old = _native.split_statements(old_src, "m.py")
    new_src = old_src.replace("return 1", "return 2")
    given = _native.split_statements(new_src, "m.py")
    new, plan = _native.plan("this is not Python", "m.py", (old_src, old), statements=given)
    assert list(new) == list(given) and new[0] is given[0]
    [step] = plan.steps
    assert (step.index, step.old_index, step.action, step.reason) == (0, 0, "patch", "changed")
    assert step.members.changed == ["m"] and step.members.unchanged == ["x"]


def test_plan_without_a_baseline_runs_everything_and_class_bodies_are_new():
    new, plan = _native.plan("X = 1\nclass C:\n    y = X\n", "m.py", whole_module=False)
    assert [(s.index, s.old_index, s.action, s.reason) for s in plan.steps] == [
        (0, None, "run", "module"), (1, None, "patch", "module")]
    members = plan.steps[1].members
    assert members.changed == ["y"] and members.statements == [("y", 0, None)] and members.old_bound == []


def test_incremental_split_matches_full_split():
    old_src = "A = 1\n\ndef f():\n    return 1\n\nclass C:\n    pass\n"
    old = _native.split_statements(old_src, "m.py")
    for new_src in (old_src.replace("return 1", "return 2"), "# top\n" + old_src, old_src + "B = 2\n",
                    old_src.replace("A = 1", "A = '''\nx")):
        try:
            full = _native.split_statements(new_src, "m.py")
        except SyntaxError:
            with pytest.raises(SyntaxError):
                _native.plan(new_src, "m.py", (old_src, old))
            continue
        fast, _ = _native.plan(new_src, "m.py", (old_src, old))
        def lines(stmts):
            return [(s.text, s.lineno, s.end_lineno, s.def_lineno, lines(s.members)) for s in stmts]
        assert lines(fast) == lines(full)


def test_find_functions_finds_the_live_functions_of_each_code():
    make = _make("def make(n):\n    def add(x):\n        return x + n\n    return add\n", "make")
    adders = [make(i) for i in range(5)]
    inner_code = adders[0].__code__
    found = _native.find_functions([inner_code, make.__code__])
    assert {id(f) for f in found[0]} == {id(a) for a in adders}
    assert found[1] == [make]


def test_apply_records_its_undo_ops():
    f = _make("def f():\n    return 1\n", "f")
    donor = _make("def f():\n    return 2\n", "f")
    outer = _make("def outer():\n    v = 1\n    def g():\n        return v\n    return g\n", "outer")
    cell = outer().__closure__[0]

    class C:
        x = 1

    d = {"k": 1}
    record: list = []
    assert _native.apply([
        _native.PatchFunction(f, donor.__code__, None, (), None, {}, "doc"),
        _native.SetAttr(C, "x", 2), _native.SetAttr(C, "y", 3), _native.DelItem(d, "k"), _native.SetCell(cell),
    ], undo=record) == 5
    [undo] = record
    assert f() == 2 and C.x == 2 and C.y == 3 and d == {}
    with pytest.raises(ValueError):
        _ = cell.cell_contents
    _native.apply(undo)
    assert f() == 1 and f.__doc__ is None and C.x == 1 and not hasattr(C, "y") and d == {"k": 1}
    assert cell.cell_contents == 1
