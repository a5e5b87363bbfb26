"""The engine's before_module_commit hook, which the route adapters build on: it sees the reload's writes and
the names it bound anew, it can refuse the reload (everything is rolled back), and its undo runs when a later
hook refuses."""

from __future__ import annotations

import pytest

from hotswap import _hooks

SOURCE = """\
def f():
    return 1

config = {"v": 1}
"""


@pytest.fixture
def hooks():
    registered = []

    def add(callback):
        registered.append(_hooks.before_module_commit(callback))
        return callback

    yield add
    for callback in registered:
        _hooks.remove_hook(callback)


def test_a_commit_hook_sees_the_new_code_and_the_names_bound_anew(modules, hooks):
    module = modules.load(SOURCE)
    old_config, f = module.config, module.f
    seen = []
    hooks(lambda change: seen.append((change.module.f(), dict(change.previous), change.patched))
          if change.module is module else None)
    report = modules.edit(module, SOURCE.replace("return 1", "return 2").replace('"v": 1', '"v": 2'))
    assert report.ok, report.error
    assert seen == [(2, {"config": old_config}, ("f",))]
    assert f() == 2 and module.config == {"v": 2}


def test_a_refusing_hook_rolls_back_the_code_and_earlier_hooks_changes(modules, hooks):
    module = modules.load(SOURCE)
    f = module.f
    state = {"routes": "old"}

    def first(change):
        if change.module is not module:
            return None
        state["routes"] = "new"
        return lambda: state.update(routes="old")

    def second(change):
        if change.module is module:
            raise ValueError("route conflict")

    hooks(first)
    hooks(second)
    report = modules.edit(module, SOURCE.replace("return 1", "return 2").replace('"v": 1', '"v": 2'))
    assert not report.ok
    assert "refused by a framework hook" in report.error and "route conflict" in report.error
    assert f() == 1 and module.config == {"v": 1}, "the code was rolled back"
    assert state["routes"] == "old", "the first hook's change was undone"
    _hooks.remove_hook(second)
    assert modules.edit(module, SOURCE.replace("return 1", "return 3")).ok, "the old source stayed the baseline"
    assert f() == 3
