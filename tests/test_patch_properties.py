"""Property-based edits: after any reload, the live module behaves as a fresh import of the new source would,
through references taken before the edit; a broken edit changes nothing at all."""

from __future__ import annotations

import types

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# A module is a list of units; each unit renders to source from a few integer "knobs" an edit can change.
KINDS = ("const", "func", "factory", "cls", "decorated")

unit = st.tuples(st.sampled_from(KINDS), st.lists(st.integers(0, 9), min_size=3, max_size=3))
module_model = st.lists(unit, min_size=1, max_size=6)


def render_unit(index: int, kind: str, knobs: list) -> str:
    a, b, c = knobs
    n = f"u{index}"
    if kind == "const":
        return f"{n} = {a} * BASE + {b}\n"
    if kind == "func":
        return f"def {n}(x, y={b}):\n    return x * {a} + y + BASE\n"
    if kind == "factory":
        return (f"def make_{n}(k):\n    def inner(x):\n        return x + k * {a} + {b}\n    return inner\n"
                f"{n} = make_{n}({c})\n")
    if kind == "cls":
        return (f"class {n}:\n    attr = {a}\n    def m(self, x):\n        return x + {b} + self.attr\n"
                f"    @property\n    def p(self):\n        return {c} * BASE\n"
                f"    @staticmethod\n    def s():\n        return {a} + {c}\n")
    return (f"@deco\ndef {n}(x):\n    return x - {a} + {b}\n")


HEADER = ("import functools\nBASE = {base}\n\ndef deco(fn):\n    @functools.wraps(fn)\n"
          "    def wrapper(*args):\n        return fn(*args) * 2\n    return wrapper\n\n")


def render(model, base: int) -> str:
    return HEADER.format(base=base) + "\n".join(render_unit(i, k, knobs) for i, (k, knobs) in enumerate(model))


def signature(obj):
    """What a unit does, as plain data."""
    if isinstance(obj, int):
        return obj
    if isinstance(obj, type):
        inst = obj()
        return ("cls", inst.m(1), inst.p, obj.s(), obj.attr)
    if isinstance(obj, types.FunctionType):
        try:
            return ("fn", obj(3), obj(4))
        except TypeError:
            return ("fn", obj(3, 1))
    raise AssertionError(f"unexpected unit {obj!r}")


def fresh(source: str) -> dict:
    namespace: dict = {"__name__": "fresh"}
    exec(compile(source, "<fresh>", "exec"), namespace)
    return namespace


edit = st.tuples(
    st.integers(0, 9),  # new BASE
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2), st.integers(0, 9)), max_size=4),  # knob changes
    st.booleans(),  # drop the last unit
    st.booleans(),  # append a unit copy of the first
    st.booleans(),  # break the source
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=module_model, base=st.integers(0, 9), change=edit)
def test_reload_matches_fresh_import(modules, model, base, change):
    new_base, knob_changes, drop_last, append_copy, broken = change
    before_src = render(model, base)
    m = modules.load(before_src)
    names = [f"u{i}" for i in range(len(model))]
    stale = {name: getattr(m, name) for name in names}
    instances = {name: obj() for name, obj in stale.items() if isinstance(obj, type)}
    old_behaviour = {name: signature(obj) for name, obj in stale.items()}

    new_model = [(kind, list(knobs)) for kind, knobs in model]
    for index, knob, value in knob_changes:
        if index < len(new_model):
            new_model[index][1][knob] = value
    if drop_last and len(new_model) > 1:
        new_model.pop()
    if append_copy:
        new_model.append((new_model[0][0], list(new_model[0][1])))
    new_src = render(new_model, new_base)
    if broken:
        new_src += "\ndef broken(:\n"

    report = modules.edit(m, new_src)
    if broken:
        assert not report.ok
        assert {name: signature(getattr(m, name)) for name in names} == old_behaviour
        assert {name: signature(obj) for name, obj in stale.items()} == old_behaviour
        return
    assert report.ok, report.error
    expected = fresh(new_src)
    # A closure made before the edit keeps what it captured (the factory's argument) and runs the new code.
    stale_model = [(kind, [*knobs[:2], model[i][1][2]] if kind == "factory" and i < len(model) else knobs)
                   for i, (kind, knobs) in enumerate(new_model)]
    expected_stale = fresh(render(stale_model, new_base))
    for i in range(len(new_model)):
        name = f"u{i}"
        assert signature(getattr(m, name)) == signature(expected[name]), name
        if name in stale and not isinstance(stale[name], int) and new_model[i][0] == model[i][0]:
            # References taken before the edit run the new code (same kind of unit, so identity is kept).
            assert signature(stale[name]) == signature(expected_stale[name]), name
            if name in instances:
                assert instances[name].m(1) == expected[name]().m(1)
    for i in range(len(new_model), len(model)):
        # Removed definitions leave the module; names bound by removed plain statements stay, as module state.
        if model[i][0] in ("func", "cls", "decorated"):
            assert not hasattr(m, f"u{i}")
