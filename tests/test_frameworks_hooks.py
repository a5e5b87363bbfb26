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


def test_the_import_finder_leaves_once_nothing_is_awaited():
    """What every import pays for the adapters' finder ends once the last awaited module is imported: here every
    framework with an adapter, and one more module a callback waits for."""
    import subprocess
    import sys

    code = ("import importlib, sys\n"
            "from hotswap import frameworks\n"
            "seen = []\n"
            "frameworks.when_imported('tabnanny', lambda module: seen.append(module.__name__))\n"
            "assert frameworks._finder in sys.meta_path\n"
            "for name in frameworks.ADAPTERS:\n"
            "    importlib.import_module(name)\n"
            "assert frameworks._finder in sys.meta_path, 'tabnanny is still awaited'\n"
            "import tabnanny\n"
            "assert seen == ['tabnanny'], seen\n"
            "assert frameworks._finder not in sys.meta_path\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
