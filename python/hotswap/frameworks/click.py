"""click: changed options and arguments take effect on the live command objects.

Mechanism: ``@click.command()`` / ``@click.option(...)`` turn a function into a ``click.Command`` when the
statement runs. An edit of the decorators runs the statement again, which makes a second ``Command`` (bound to
the module's name, and registered in its group by ``@group.command()``), while every reference taken earlier (a
group, a test's ``from cli import main``) keeps the old one. The adapter keeps every ``Command`` in a weak
registry keyed by its callback's module and qualified name; after each successful reload of a module, the state
of each command the reload made is moved into the command of the same definition that existed before (a
group keeps its subcommands), and that older object is put back where the new one went (the module's
namespace, groups' command tables), so there is still one command per definition, with the new options.

Trade-off: the move is a ``__dict__`` update of the old object, done after the reload's transaction (a command
being invoked at that moment on another thread finishes with the options it parsed).
"""

from __future__ import annotations

import inspect
import sys
import types
import weakref
from typing import Any, Dict, List, Optional, Tuple

from . import track_instances

_commands: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()
_born: Dict[int, int] = {}  # id(command) -> creation number, to tell older from newer
_counter = [0]


def activate(click: types.ModuleType) -> None:
    from ..reload import on_reload

    def born(command: Any) -> None:
        _counter[0] += 1
        _born[id(command)] = _counter[0]

    track_instances(click.Command, _commands, born)
    on_reload(_on_reload)


def callback_key(callback: Any) -> Optional[Tuple[str, str]]:
    if callback is None:
        return None
    func = inspect.unwrap(callback)
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    return module, qualname


def _on_reload(report: Any) -> None:
    if not report.ok:
        return
    module = sys.modules.get(report.module)
    click = sys.modules.get("click")
    if module is None or click is None:
        return
    by_key: Dict[Tuple[str, str], List[Any]] = {}
    for command in list(_commands.values()):
        key = callback_key(getattr(command, "callback", None))
        if key is not None and key[0] == module.__name__:
            by_key.setdefault(key, []).append(command)
    replaced: Dict[int, Any] = {}  # id(newest) -> the oldest object of that definition, which stays
    for commands in by_key.values():
        if len(commands) < 2:
            continue
        commands.sort(key=lambda c: _born.get(id(c), 0))
        oldest, newest = commands[0], commands[-1]
        state = dict(newest.__dict__)
        if isinstance(oldest, click.Group) and isinstance(newest, click.Group):
            state["commands"] = {**oldest.commands, **newest.commands}
        oldest.__dict__.update(state)
        for stale in commands[1:]:
            replaced[id(stale)] = oldest
            _commands.pop(id(stale), None)
    if not replaced:
        return
    for name, value in list(module.__dict__.items()):
        if id(value) in replaced:
            module.__dict__[name] = replaced[id(value)]
    for command in list(_commands.values()):
        table = getattr(command, "commands", None)
        if isinstance(table, dict):
            for name, sub in list(table.items()):
                if id(sub) in replaced:
                    table[name] = replaced[id(sub)]
