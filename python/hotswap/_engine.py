"""One reload as a transaction: run what the plan says, collect every write, apply them in one native step.

Statements that must run (new, changed plain statements, readers of rebound names) run in the module's own
namespace, after a snapshot of it is taken. Changed definitions are not bound there: a changed ``def`` runs with
the module's namespace as globals and a throwaway local namespace, and the function it makes (the *donor*) gives
its code, defaults and closure to the live function. A changed ``class`` never makes a second class: its body
runs in a namespace prepared as the metaclass would (``__prepare__``), with ``__build_class__`` standing in so
that no metaclass, ``__init_subclass__`` or decorator sees a new class; the members of that namespace are
diffed against the live class, and the machinery derived from them is redone on the live class
(``_machinery``). Functions made either way have the module's real namespace as ``__globals__``.

Every write to a live object becomes an op for ``hotswap._native.apply``, which applies them all while holding
the GIL and undoes them all if one fails. Writes queued before a statement that must run are applied just
before it runs, so module-level code calls the new versions of the functions it uses (as a re-import would); in
the common case, where only functions changed, that is a single native step at the end. If anything raises,
every applied batch is undone, classes written to directly get their members back, and the namespace is put
back from the snapshot, so a failed reload leaves the module as it was.
"""

from __future__ import annotations
import __future__

import abc
import ast
import builtins
import collections.abc
import contextlib
import functools
import inspect
import linecache
import logging
import re
import sys
import textwrap
import threading
import types
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, cast

from . import _hooks, _machinery, _native

logger = logging.getLogger("hotswap")

_MISSING: Any = object()
_HAS_TYPE_PARAMS = sys.version_info >= (3, 12)

# Class attributes never copied from an evaluated class body to the live class: identity and layout belong to
# the live class, and `_abc_impl` holds its registered virtual subclasses.
_CLASS_KEEP = frozenset({"__dict__", "__weakref__", "__module__", "__qualname__", "__slots__", "_abc_impl",
                         "__orig_bases__", "__classcell__", "__classdictcell__"})
_LAYOUT_DESCRIPTORS = (types.MemberDescriptorType, types.GetSetDescriptorType)
# Plain functions that `type.__new__` wraps when it makes a class.
_IMPLICIT_WRAPPERS: Dict[str, Callable[[Any], Any]] = {
    "__new__": staticmethod, "__init_subclass__": classmethod, "__class_getitem__": classmethod}


# Every function object that has come from one definition (the first made, and one more each time its
# decorators changed and the statement ran again): a patch of one is a patch of all, so a reference taken
# before `@tag(1)` became `@tag(2)` keeps following the body. Each member maps to the group's shared set.
_FAMILIES: "weakref.WeakKeyDictionary[types.FunctionType, weakref.WeakSet]" = weakref.WeakKeyDictionary()

# Closures left unpatched (their new code needed a variable they never captured), by the nested code object that
# superseded theirs: a later edit that pairs that code with a newer one tries them again.
_LEFT_BEHIND: "weakref.WeakKeyDictionary[types.CodeType, weakref.WeakSet]" = weakref.WeakKeyDictionary()


# Which functions and classes each module's reloads changed the code of, by top-level name, with the number of
# the reload (counted over the process) that last did; and, for classes whose decorators a reload applied, the
# number of that reload. A class decorated before a later change of the code its decorator runs (in another
# module) is decorated again when its own module is reloaded (`Transaction.steps`).
_CODE_CHANGES: Dict[str, Dict[str, int]] = {}
_DECORATED: "weakref.WeakKeyDictionary[type, int]" = weakref.WeakKeyDictionary()
_reloads_done = 0


class ReloadFailed(Exception):
    """The user's code raised while the reload ran it; carries the formatted reason."""


class Transaction:
    def __init__(self, module: types.ModuleType, path: str, text: str, old_stmts, new_stmts, rebound: Set[str],
                 member_plans: Optional[Dict[int, Any]] = None):
        self.module = module
        self.namespace: Dict[str, Any] = module.__dict__
        self.path = path
        self.text = text
        self.old_stmts = old_stmts
        self.new_stmts = new_stmts
        self.rebound = rebound
        # Names that only removed statements bound (a removed `str = bytes` shim): they are removed before any
        # code of the reload runs (as they do not exist in a fresh import), and defaults reading them are new.
        self.unbound = set(unbound_names(old_stmts, new_stmts))
        self._unbind_pending = bool(self.unbound)
        self._unbound_now: Set[str] = set()  # names `unbind_own_reads` took away for the statement about to run
        self.is_main = module.__name__ == "__main__"
        self.index = {id(stmt): i for i, stmt in enumerate(new_stmts)}
        self.member_plans = member_plans or {}  # the planner's MemberPlan of each patched class, by statement index
        self.notes: List[str] = []
        self.flags = _future_flags(new_stmts)
        self.ops: List[_native.Op] = []
        self.after: List[Callable[[], object]] = []
        self.patched: List[str] = []
        self.added: List[str] = []
        self.removed: List[str] = []
        self.needs_restart: List[str] = []
        self.executed = 0
        self.snapshot: Optional[Dict[str, Any]] = None
        self._nested: List[Tuple[types.CodeType, types.CodeType]] = []
        self._targets: Set[int] = set()
        self._bodies: Dict[int, ClassBody] = {}  # evaluated class bodies, by id of the live class
        self._finish: List[tuple] = []  # classes whose derived machinery is still to redo, innermost first
        self._changes: List[_hooks.ClassChange] = []
        self._touched: Set[int] = set()
        # Top-level classes whose unchanged class decorators are applied again (the code they run changed), with
        # the texts of those decorators (see `steps`).
        self._redecorate: Dict[str, Set[str]] = {}
        self._code_changed: Set[str] = set()  # functions and classes whose code this reload changes
        self._decorated: List[type] = []  # classes whose decorators this reload applied
        # What undoes the work done so far, oldest first: ("ops", inverse ops of an applied batch) or
        # ("class", cls, its members before this reload touched it).
        self._undo: List[tuple] = []

    # --- running code ---------------------------------------------------------------------------------------

    def _compile(self, source: str, lineno: int) -> types.CodeType:
        # Leading newlines put every line where it is in the file: tracebacks and inspect stay right.
        return compile("\n" * (lineno - 1) + source, self.path, "exec", self.flags, dont_inherit=True)

    def _exec(self, code: types.CodeType, namespace: Dict[str, Any], local: Optional[Dict[str, Any]] = None) -> None:
        if self._unbind_pending:
            self._unbind_pending = False
            self.remove(sorted(self.unbound))
            self.flush()
        try:
            exec(code, namespace, namespace if local is None else local)
        except ReloadFailed:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt at import are user errors too
            raise ReloadFailed(_format_user_error(exc, self.path)) from None

    def run(self, stmt, code: Optional[types.CodeType] = None) -> None:
        """Runs a statement (or ``code`` compiled from it) in the module's namespace (snapshotting the namespace
        first)."""
        self.flush()
        if self.snapshot is None:
            self.snapshot = dict(self.namespace)
        if code is None:
            code = self._compile(stmt.text, stmt.lineno)
        before = set(self.namespace) | self._unbound_now  # a name unbound for the statement is not new
        self._unbound_now = set()
        doc = self.namespace.get("__doc__", _MISSING)
        self._exec(code, self.namespace)
        self.executed += 1
        if "__doc__" not in stmt.binds and self.index.get(id(stmt)) != 0 and \
                self.namespace.get("__doc__", _MISSING) is not doc:
            # A bare string run on its own compiles as a module docstring; only the first statement is one.
            self.namespace["__doc__"] = doc
        for name in stmt.binds:
            if name not in before and name in self.namespace:
                self.added.append(name)
            made = self.namespace.get(name)
            if isinstance(made, type) and made.__module__ == self.module.__name__:
                self._decorated.append(made)  # made (or finished) now, by the current code

    def build(self, source: str, lineno: int, name: str) -> Any:
        """Runs a definition with the module's namespace as globals and a throwaway local namespace, and returns
        what it bound to ``name`` (the donor): the module keeps its binding, the donor's functions (default
        lambdas included) get the module's real namespace as ``__globals__``."""
        local: Dict[str, Any] = {}
        self._exec(self._compile(source, lineno), self.namespace, local)
        donor = local.get(name, _MISSING)
        if donor is _MISSING:
            raise ReloadFailed(f"{self.path}:{lineno}: the definition did not bind {name!r}")
        return donor

    def live(self, name: str) -> Any:
        if self.snapshot is not None and name in self.snapshot:
            return self.snapshot[name]
        return self.namespace.get(name, _MISSING)

    # --- plan steps ---------------------------------------------------------------------------------------------

    def step_run(self, stmt, reason: str, old_stmt) -> None:
        if reason == "new" and self._made_elsewhere(stmt):
            # A new definition of an object another statement made (`X = namedtuple("X", ...)` became
            # `class X(NamedTuple)`, a `def` or `class` moved out of a `try` block): it keeps its identity and
            # is patched as a changed definition (a class decorator the old block applied is not called again).
            old_defs = self._old_block_classes(self.old_stmts, [stmt.name]).get(stmt.name) \
                if stmt.kind == "class" else None
            old_def = old_defs[0] if old_defs else None
            self.step_patch(stmt, "changed", old_def)
            return
        if self.is_main and stmt.kind == "other":
            # __main__ is never re-executed wholesale: only its definitions are patched. A new or changed plain
            # statement (the program's main loop, say) cannot run again in place: the program must restart.
            if reason in ("new", "changed"):
                self.needs_restart.append(
                    f"line {stmt.lineno} of __main__ changed ({_first_line(stmt.text)}); it cannot run again in "
                    "place, a restart is needed")
            return
        old_obj = self.live(stmt.name) if stmt.name else _MISSING
        # Plain functions a statement binds (`name = lambda ...`, a `def` inside an `if` or `try` block) are
        # definitions too: the live function keeps its identity and gets the new code.
        old_functions = {name: self.live(name) for name in stmt.binds} if stmt.kind == "other" else {}
        classes = {name: obj for name, obj in old_functions.items() if self._is_own_class(obj, name)}
        if stmt.kind == "other" and reason in ("new", "changed"):
            self.unbind_own_reads(stmt)
        if classes and _patchable_in_block(stmt.text, classes):
            # Classes defined inside an `if` or `try` block are patched in place, as top-level ones are.
            self.run_block_classes(stmt, old_stmt, classes)
        else:
            self.run(stmt)
        if reason == "acts_on":
            self.notes.append(f"line {stmt.lineno} ran again: it acts on a definition this reload changed")
        elif reason == "post_processes":
            self.notes.append(f"line {stmt.lineno} ran again: it post-processes {', '.join(stmt.binds)} with code "
                              "this reload changed")
        if reason == "decorators" and old_obj is not _MISSING:
            # The decorators are applied anew (the name now holds their result). References that forward to the
            # old result (decorators were added by an earlier edit) call the new one.
            for forwarder in list(_FORWARDERS):
                if forwards_to(forwarder) is old_obj:
                    self.ops.append(_native.SetCell(forwarder.__closure__[0], self.namespace.get(stmt.name)))
            target = find_function(old_obj, stmt.name, self.path, old_stmt, self.namespace)
            donor = find_function(self.namespace.get(stmt.name), stmt.name, self.path, stmt)
            if target is not None and donor is not None and target is not donor:
                if target is old_obj and not (old_stmt.decorators if old_stmt is not None else ()):
                    # A decorator added to a plain function: its new code may only work under the decorator
                    # (a generator under @contextmanager), so references taken before never run it bare: they
                    # call the decorated version, and follow later edits through it.
                    self.forward(old_obj, self.namespace.get(stmt.name),
                                 f"{stmt.name}: decorators added; references taken before the edit now call the "
                                 "decorated version")
                elif _code_kind(target.__code__) != _code_kind(donor.__code__) and \
                        isinstance(old_obj, types.FunctionType) and old_obj is not target:
                    # The body changed kind with its decorators (a generator no longer under @contextmanager):
                    # the old decorated function calls what the name now holds, never the new body under the
                    # old decorator.
                    self.forward(old_obj, self.namespace.get(stmt.name),
                                 f"{stmt.name}: decorators changed; references taken before the edit now call the "
                                 "new version")
                else:
                    # References to the old function get the new code, and keep following the definition.
                    self.patch_function(target, donor, old_stmt, stmt)
                    self.after.append(functools.partial(_join_family, target, donor))
            self.patched.append(stmt.name)
        for name, old in old_functions.items():
            new = self.namespace.get(name, _MISSING)
            if _same_definition(old, new, self.path):
                self.patch_function(old, new, None, None)
                self.ops.append(_native.SetItem(self.namespace, name, old))
                self.patched.append(name)
            elif self._replaced_definition(old, new, name):
                self.forward(old, new, f"{name}: its `def` was replaced by another binding; references taken before "
                                       "the edit now call what the name holds")

    def _replaced_definition(self, old: Any, new: Any, name: str) -> bool:
        """``old``, the function a `def name` of this file made, is no longer bound to ``name``: no top-level `def`
        of the new source makes it, and the name holds another callable (`batched = _batched`)."""
        return (isinstance(old, types.FunctionType) and old.__code__.co_filename == self.path
                and old.__code__.co_name == name and new is not old and new is not _MISSING and callable(new)
                and id(old) not in self._targets
                and not any(stmt.kind == "def" and stmt.name == name for stmt in self.new_stmts))

    def forward(self, old: types.FunctionType, new: Any, note: str) -> None:
        """References to ``old`` call ``new`` from now on: ``old`` gets code that calls it (``forwards_to(old)``
        tells it) and its attributes (``register`` of a ``singledispatch``, ``__wrapped__``)."""
        forward = _forwarder(new)
        self._targets.add(id(old))
        self.ops.append(_func_op(old, code=forward.__code__, closure=forward.__closure__, defaults=None,
                                 kwdefaults=None, annotations=dict(getattr(new, "__annotations__", {}) or {}),
                                 doc=getattr(new, "__doc__", None)))
        for key, value in getattr(new, "__dict__", {}).items():
            if key == "__wrapped__" or not (key.startswith("__") and key.endswith("__")):
                self.ops.append(_native.SetAttr(old, key, value))
        self.after.append(functools.partial(_FORWARDERS.add, old))
        self.notes.append(note)

    def unbind_own_reads(self, stmt) -> None:
        """A new or changed statement that reads a name it binds (`try: ExceptionGroup` / `except NameError:`
        `class ExceptionGroup`) sees it as a fresh import would: unbound (so a builtin of that name is found),
        unless an earlier statement binds it. Names the import system sets (`__path__`) are left alone."""
        index = self.index.get(id(stmt), -1)
        names = [name for name in stmt.binds if name in stmt.reads and name in self.namespace
                 and not (name.startswith("__") and name.endswith("__"))]
        if index < 0 or not names:
            return
        earlier = {name for other in self.new_stmts[:index] for name in other.binds}
        names = [name for name in names if name not in earlier]
        if names:
            if self.snapshot is None:
                self.snapshot = dict(self.namespace)
            self.ops.extend(_native.DelItem(self.namespace, name) for name in names)
            self.flush()
            self._unbound_now = set(names)

    def step_patch(self, stmt, reason: str, old_stmt) -> None:
        live = self.live(stmt.name)
        if stmt.kind == "def":
            target = find_function(live, stmt.name, self.path, old_stmt, self.namespace)
            if target is None:
                if not self.bound_later(stmt):  # else an unchanged later statement's binding stands
                    self.step_run(stmt, "new", None)
                return
            donor = self.build(stmt.def_text, stmt.def_lineno, stmt.name)
            if not isinstance(donor, types.FunctionType):
                raise ReloadFailed(f"{self.path}:{stmt.lineno}: {stmt.name} is no longer a function")
            self.patch_function(target, donor, old_stmt, stmt)
            self.rebind(stmt.name, live)
            if target is not live:
                self.after.extend(_cache_clears(live))
                self.follow_wrappers(live, target, donor)
            if reason in ("changed", "reads"):
                self.patched.append(stmt.name)
            return
        # A class.
        if not self._is_own_class(live, stmt.name):
            if self.bound_later(stmt):
                return  # an unchanged later statement binds the name (`try: from collections import OrderedDict`)
            self.step_run(stmt, "new", None)
            return
        body = self.evaluate_class(stmt, live)
        problem = incompatible(live, body)
        if problem is not None and "__slots__" in live.__dict__ and "__slots__" not in body.ns and \
                old_stmt is not None and not any("__slots__" in m.binds for m in old_stmt.members) and \
                old_stmt.decorators:
            # Its body never wrote `__slots__`: a class decorator made them (`slots=True`), by making a new class.
            made_by = ", ".join("@" + text for text in old_stmt.decorators)
            problem = (f"its __slots__ were made by a class decorator ({made_by}), which makes a new class each "
                       "time it runs")
            if reason == "redecorate":
                problem = f"the code its class decorator runs changed, and {problem}"
        if problem is not None:
            # Not half-applied: the name gets a new class (built in the module's own namespace), old instances
            # keep their class, and the report says a restart is needed.
            self.needs_restart.append(
                f"cannot patch {self.module.__name__}.{stmt.name}: {problem}; a restart is needed")
            self.run(stmt)
            self.patched.append(stmt.name)
            return
        plan = self.member_plans.get(self.index.get(id(stmt), -1))
        if isinstance(old_stmt, _BlockClass):
            # Moved out of a block: members are compared with the class as the block defined it.
            plan = _BlockMemberPlan(old_stmt, _BlockClass.from_stmt(stmt))
        changed = self.patch_class(live, body, old_stmt, stmt, stmt.name, plan)
        self.finish_classes()
        self.rebind(stmt.name, live)
        if changed or reason in ("changed", "reads", "redecorate"):
            self.patched.append(stmt.name)

    def steps(self, planned: Sequence[Any]) -> List[Any]:
        """The planner's steps, plus the unchanged statements that make or finish a class of this module with code
        that changed, which run again as a fresh import would run them (the class itself is kept):

        - a class statement whose class decorator runs code this reload changes (the decorator is a function of
          this module, or uses one, or a class of it, at any depth), or code an earlier reload of the module
          defining the decorator changed after the class was decorated: that decorator is applied again to the
          live class, as if its text had changed;
        - a statement that post-processes a class of this module by calling a function of this module that runs
          code this reload changes (``C = _add_eq(C)``: it binds only names that hold classes of this module,
          each of which it also reads).

        Any other unchanged statement stays as it is: ``app = make_app()`` does not run again because
        ``make_app`` changed."""
        changed = {self.new_stmts[step.index].name for step in planned
                   if self.new_stmts[step.index].kind != "other"
                   and (step.action, step.reason) in (("patch", "changed"), ("run", "decorators"))}
        self._code_changed = changed
        if not changed and not _CODE_CHANGES:
            return list(planned)
        by_index = {step.index: step for step in planned}
        old_by_text: Dict[str, int] = {}
        for j, old in enumerate(self.old_stmts):
            old_by_text.setdefault(old.text, j)
        memo: Dict[Tuple[str, str], Set[str]] = {}
        for i, stmt in enumerate(self.new_stmts):
            step = by_index.get(i)
            live = self.live(stmt.name) if stmt.kind == "class" else None
            if step is not None and step.action == "patch" and stmt.kind == "class" and stmt.decorators and \
                    step.old_index is not None and self._is_own_class(live, stmt.name):
                # A changed class body: its deriving decorators run again anyway, the others if their code changed.
                why = self._redecorations(stmt, live, changed, memo)
                if why:
                    self._redecorate[stmt.name] = set(why)
                    self.notes.append(f"{stmt.name}: its class decorators ran again on the live class: the code "
                                      f"they run changed ({', '.join(sorted(set().union(*why.values())))})")
                continue
            if step is not None and step.action != "move":
                continue
            old_index = step.old_index if step is not None else old_by_text.get(stmt.text)
            if old_index is None:
                continue
            if stmt.kind == "class" and stmt.decorators and self._is_own_class(live, stmt.name):
                why = self._redecorations(stmt, live, changed, memo)
                if why:
                    self._redecorate[stmt.name] = set(why)
                    self.member_plans[i] = _UnchangedMemberPlan(stmt.members)
                    by_index[i] = _Step(i, old_index, "patch", "redecorate", self.member_plans[i])
                    self.notes.append(
                        f"{stmt.name}: unchanged, its class decorators ran again on the live class: the code they "
                        f"run changed ({', '.join(sorted(set().union(*why.values())))})")
            elif changed and stmt.kind == "other" and stmt.binds and all(
                    name in stmt.reads and isinstance(self.live(name), type)
                    and self.live(name).__module__ == self.module.__name__ for name in stmt.binds):
                users = [name for name in stmt.reads if name not in stmt.binds
                         and self._own_codes(self.live(name), self.module.__name__, self.path)
                         and isinstance(self.live(name), types.FunctionType)
                         and self._uses(self.live(name), memo) & changed]
                if users:
                    by_index[i] = _Step(i, old_index, "run", "post_processes", None)
        return [by_index[i] for i in sorted(by_index)]

    def _redecorations(self, stmt, cls: type, changed: Set[str],
                       memo: Dict[Tuple[str, str], Set[str]]) -> Dict[str, Set[str]]:
        """The class decorators of ``stmt`` that run changed code, with the names of that code."""
        why = {text: self._decorator_changes(text, cls, changed, memo) for text in stmt.decorators}
        return {text: names for text, names in why.items() if names}

    def _decorator_changes(self, text: str, cls: type, changed: Set[str],
                           memo: Dict[Tuple[str, str], Set[str]]) -> Set[str]:
        """The names of changed code the class decorator ``text`` runs (see ``steps``): of this module, by this
        reload; of the module defining it, by a reload after ``cls`` was decorated (qualified by that module)."""
        head = text.split("(", 1)[0].strip()
        if not all(part.isidentifier() for part in head.split(".")):
            return set()
        first, *rest = head.split(".")
        decorator = self.live(first)
        for part in rest:
            decorator = getattr(decorator, part, _MISSING)
        if self._own_codes(decorator, self.module.__name__, self.path):
            return self._uses(decorator, memo) & changed if changed else set()
        func = getattr(decorator, "__func__", decorator)
        if not isinstance(func, types.FunctionType):
            return set()
        try:
            since = _DECORATED.get(cls, 0)
        except TypeError:  # a metaclass that makes its classes unhashable
            since = 0
        later = {name for name, generation in _CODE_CHANGES.get(func.__module__, {}).items() if generation > since}
        if not later:
            return set()
        return {f"{func.__module__}.{name}" for name in self._uses(func, memo) & later}

    def _uses(self, start: Any, memo: Dict[Tuple[str, str], Set[str]]) -> Set[str]:
        """The functions and classes, by top-level name, of the module defining the function or class ``start``
        that ``start`` uses: itself, and those its code names, at any depth (names its code reads, an
        over-estimate that counts attribute names too)."""
        module = sys.modules.get(getattr(start, "__module__", None) or "")
        func = getattr(start, "__func__", start)
        path = func.__code__.co_filename if isinstance(func, types.FunctionType) else getattr(module, "__file__", "")
        if module is None or not path:
            return set()
        namespace = self.namespace if module is self.module else module.__dict__
        key = (module.__name__, getattr(start, "__qualname__", ""))
        if key not in memo:
            seen: Set[str] = set()
            name = getattr(start, "__name__", None)
            if name is not None and namespace.get(name) is start:
                seen.add(name)
            queue = [found for code in self._own_codes(start, module.__name__, path) for found in _code_names(code)]
            while queue:
                current = queue.pop()
                if current in seen:
                    continue
                codes = self._own_codes(self.live(current) if module is self.module else namespace.get(current),
                                        module.__name__, path)
                if codes:
                    seen.add(current)
                    queue.extend(found for code in codes for found in _code_names(code) if found not in seen)
            memo[key] = seen
        return memo[key]

    @staticmethod
    def _own_codes(obj: Any, module: str, path: str) -> List[types.CodeType]:
        """The code of a function of the file ``path`` (under its wrappers), or of the functions of a class of
        ``module`` defined there."""
        if isinstance(obj, type):
            return [func.__code__ for func in _class_functions(obj, path)] if obj.__module__ == module else []
        return [item.__code__ for item in _unwrap_candidates(obj)
                if isinstance(item, types.FunctionType) and item.__code__.co_filename == path]

    def rebind(self, name: str, live: Any) -> None:
        """A definition binds its name last in source order: if a statement this reload ran bound the name to
        something else (an `@overload` stub above it), the name gets the live object back."""
        if live is not _MISSING and self.namespace.get(name, _MISSING) is not live:
            self.ops.append(_native.SetItem(self.namespace, name, live))

    def bound_later(self, stmt) -> bool:
        index = self.index.get(id(stmt), -1)
        return any(stmt.name in later.binds for later in self.new_stmts[index + 1:]) if index >= 0 else False

    def step_move(self, stmt, old_stmt) -> None:
        delta = stmt.lineno - old_stmt.lineno
        live = self.live(stmt.name)
        if stmt.kind == "def":
            target = find_function(live, stmt.name, self.path, old_stmt, self.namespace)
            functions = [target] if target is not None else []
        elif isinstance(live, type) and live.__module__ == self.module.__name__:
            # Only the functions its statement defined: one made elsewhere in the module and set on the class
            # (`A.__ne__ = _make_ne()`) moves with the code that made it.
            functions = [func for func in _class_functions(live, self.path)
                         if old_stmt.lineno <= func.__code__.co_firstlineno <= old_stmt.end_lineno]
            if hasattr(live, "__firstlineno__"):
                self.ops.append(_native.SetAttr(live, "__firstlineno__", live.__firstlineno__ + delta))
        elif stmt.kind == "other":
            # Functions defined inside an unchanged block (`if`, `try`) that moved.
            functions = [item for name in stmt.binds for item in _unwrap_candidates(self.live(name))
                         if isinstance(item, types.FunctionType) and item.__code__.co_filename == self.path
                         and old_stmt.lineno <= item.__code__.co_firstlineno <= old_stmt.end_lineno]
        else:
            functions = []
        # Default `lambda`s of those functions were made by the same statement: they move with it.
        functions += [value for func in functions for value in _default_values(func)
                      if isinstance(value, types.FunctionType) and value.__code__.co_filename == self.path
                      and old_stmt.lineno <= value.__code__.co_firstlineno <= old_stmt.end_lineno]
        for func in functions:
            if id(func) in self._targets:
                continue
            self._targets.add(id(func))
            shifted = _shift_lines(func.__code__, delta)
            self.ops.append(_func_op(func, code=shifted))
            # Closures it made before (a factory's products) move with it: `patch_closures` finds them.
            self._nested.extend(_nested_code_pairs(func.__code__, shifted))

    def remove(self, names: Iterable[str]) -> None:
        """Removes the names bound only by statements removed from the source, and a removed module docstring."""
        names = list(names)
        if "__doc__" in names or (_docstring(self.old_stmts) is not None and _docstring(self.new_stmts) is None
                                  and not any("__doc__" in stmt.binds for stmt in self.new_stmts)):
            # A module always has `__doc__`: without a statement binding it, it is the docstring (or None).
            names = [name for name in names if name != "__doc__"]
            doc = _docstring(self.new_stmts)
            if self.namespace.get("__doc__", _MISSING) != doc:
                self.ops.append(_native.SetItem(self.namespace, "__doc__", doc))
        annotations = self.namespace.get("__annotations__")
        for name in names:
            if name in self.namespace:
                self.ops.append(_native.DelItem(self.namespace, name))
                self.removed.append(name)
            if isinstance(annotations, dict) and name in annotations:
                self.ops.append(_native.DelItem(annotations, name))

    # --- functions --------------------------------------------------------------------------------------------

    def patch_function(self, target: types.FunctionType, donor: types.FunctionType, old_stmt, new_stmt) -> None:
        """Queues the write of ``donor``'s code, closure, defaults, annotations and doc into ``target``."""
        if id(target) in self._targets:
            return
        self._targets.add(id(target))
        defaults, kwdefaults = self._merge_defaults(target, donor, old_stmt, new_stmt)
        # A docstring the definition did not change keeps what later statements set (`f.__doc__ = ...`).
        doc = donor.__doc__ if donor.__doc__ != _source_doc(target.__code__) else target.__doc__
        self.ops.append(_func_op(
            target, code=donor.__code__, closure=donor.__closure__, defaults=defaults, kwdefaults=kwdefaults,
            annotations=donor.__annotations__, doc=doc,
            type_params=getattr(donor, "__type_params__", None) if _HAS_TYPE_PARAMS else None,
        ))
        self._nested.extend(_nested_code_pairs(target.__code__, donor.__code__))
        for sibling in list(_FAMILIES.get(target, ())):
            # Functions of the same definition made before its decorators changed; same code, same closure shape.
            if sibling is not target and id(sibling) not in self._targets and \
                    len(sibling.__closure__ or ()) == len(target.__closure__ or ()):
                self._targets.add(id(sibling))
                self.ops.append(_func_op(sibling, code=donor.__code__, closure=donor.__closure__, defaults=defaults,
                                         kwdefaults=kwdefaults, annotations=donor.__annotations__, doc=donor.__doc__))

    def follow_wrappers(self, outer: Any, target: types.FunctionType, donor: types.FunctionType) -> None:
        """Wrappers around ``target`` (``functools.wraps``, ``contextmanager``, ``lru_cache``) copied its metadata
        when they were made: what they copied takes the new function's values (what they set themselves stays)."""
        for item in _unwrap_candidates(outer):
            if item is target or getattr(item, "__wrapped__", None) is None:
                continue
            for attr in ("__doc__", "__annotations__", "__name__", "__qualname__"):
                current = getattr(item, attr, _MISSING)
                new = getattr(donor, attr, _MISSING)
                if current is not _MISSING and new is not _MISSING and current == getattr(target, attr, _MISSING) \
                        and current is not new:
                    self.ops.append(_native.SetAttr(item, attr, new))

    def _merge_defaults(self, target, donor, old_stmt, new_stmt):
        """The donor's defaults, except those whose expression text is unchanged and reads nothing rebound:
        those keep the live object (a mutable default's contents survive the reload)."""
        defaults, kwdefaults = donor.__defaults__, donor.__kwdefaults__
        if old_stmt is None or new_stmt is None:
            return defaults, kwdefaults
        old_text = {name: text for name, text, _ in old_stmt.defaults}
        keep = {
            name for name, text, reads in new_stmt.defaults
            if old_text.get(name) == text and not self.rebound.intersection(reads)
            and not self.unbound.intersection(reads)
        }
        if not keep:
            return defaults, kwdefaults
        kept: List[Tuple[Any, Any]] = []  # (live value kept, the donor's value of the same expression)

        def pick(name: str, old: Any, new: Any) -> Any:
            if name in keep and old is not _MISSING:
                kept.append((old, new))
                return old
            return new

        if defaults:
            old_values = dict(zip(_positional_default_names(target), target.__defaults__ or ()))
            defaults = tuple(pick(name, old_values.get(name, _MISSING), value)
                             for name, value in zip(_positional_default_names(donor), defaults))
        if kwdefaults:
            old_kw = target.__kwdefaults__ or {}
            kwdefaults = {k: pick(k, old_kw.get(k, _MISSING), v) for k, v in kwdefaults.items()}
        for old, new in kept:
            # A kept default `lambda` gets the code of the same text compiled where it now is (its line numbers).
            if isinstance(old, types.FunctionType) and isinstance(new, types.FunctionType) \
                    and old.__code__.co_filename == self.path and _same_definition(old, new, self.path):
                self.patch_function(old, new, None, None)
        return defaults, kwdefaults

    def patch_closures(self) -> None:
        """Functions made at run time from changed code (closures from factories, nested helpers) get the new
        nested code too, rebuilding each closure by free-variable name from its own cells."""
        pairs = [(old, new) for old, new in self._nested if old is not new]
        if not pairs:
            return
        found = _native.find_functions([old for old, _ in pairs])
        candidates = []
        for (old_code, new_code), functions in zip(pairs, found):
            candidates += [(func, old_code, new_code) for func in functions]
            # Closures an earlier edit could not patch, made from code that `old_code` superseded.
            candidates += [(func, func.__code__, new_code) for func in list(_LEFT_BEHIND.get(old_code, ()))]
        for func, old_code, new_code in candidates:
            if id(func) in self._targets:
                continue
            cells = dict(zip(old_code.co_freevars, func.__closure__ or ()))
            missing = [name for name in new_code.co_freevars if name not in cells]
            if missing:
                logger.warning(
                    "%s: left %s unpatched: its new code needs %s, which the closure it was made with "
                    "never captured (it gets the new code when it is made again, or when a later edit fits it)",
                    self.module.__name__, func.__qualname__, ", ".join(missing))
                self.after.append(functools.partial(_leave_behind, func, new_code))
                continue
            closure = tuple(cells[name] for name in new_code.co_freevars) or None
            self._targets.add(id(func))
            self.ops.append(_func_op(func, code=new_code, closure=closure))
            self._nested.extend(_nested_code_pairs(old_code, new_code))
            self.after.append(functools.partial(_forget_left_behind, func))

    # --- classes ----------------------------------------------------------------------------------------------

    def patch_class(self, live: type, body: "ClassBody", old_stmt, new_stmt, qualname: str, plan: Any) -> bool:
        """Queues the writes that make ``live``'s members those of its evaluated ``body``, as the planner's
        ``MemberPlan`` for the class body says; returns whether any member changed. The machinery derived from
        the members is redone later (``finish_classes``)."""
        changed = False
        mark = self._mark()
        ns = dict(body.ns)
        cell = ns.pop("__classcell__", None)
        if cell is not None:
            # Methods of the new body run `super()` and `__class__` against the live class.
            self.ops.append(_native.SetCell(cell, live))
        dict_cell = ns.pop("__classdictcell__", None)  # 3.13: annotation scopes read class-level names from it
        if dict_cell is not None:
            self.ops.append(_native.SetCell(dict_cell, body.ns))
        old_members = list(old_stmt.members) if old_stmt is not None else []
        new_members = list(new_stmt.members) if new_stmt is not None else []
        if plan is None:
            plan = _NO_MEMBER_PLAN
        unchanged, changed_names, old_bound = set(plan.unchanged), set(plan.changed), set(plan.old_bound)
        member_stmts = {name: new_members[i] for name, i, _ in plan.statements}
        old_member_stmts = {name: old_members[j] for name, _, j in plan.statements if j is not None}
        nested_plans = dict(plan.nested)
        is_enum = _machinery.is_enum(live)
        machinery_owned: Set[str] = set()
        if is_enum:
            machinery_owned |= set(_machinery.enum_member_names(body.ns)) | set(cast(Any, live)._member_map_)
        if _machinery.is_namedtuple(live):
            machinery_owned |= set(_machinery.namedtuple_fields(ns)) | set(cast(Any, live)._fields)
        elif "__doc__" not in ns and not is_enum:
            ns["__doc__"] = None  # a docstring removed from the body
        for key, wrap in _IMPLICIT_WRAPPERS.items():
            if isinstance(ns.get(key), types.FunctionType):
                ns[key] = wrap(ns[key])  # as `type.__new__` wraps them
        live_dict = live.__dict__
        old_values: Dict[str, Any] = {}
        new_values: Dict[str, Any] = {}
        set_names: List[Tuple[str, Any]] = []
        for key, new in ns.items():
            if key in _CLASS_KEEP or key in machinery_owned or isinstance(new, _LAYOUT_DESCRIPTORS):
                continue
            old = live_dict.get(key, _MISSING)
            name = f"{qualname}.{key}"
            if old is _MISSING:
                self.ops.append(_native.SetAttr(live, key, new))
                set_names.append((key, new))
                new_values[key] = new
                self.added.append(name)
                changed = True
                continue
            nested = self._bodies.get(id(old)) if new is old and isinstance(old, type) else None
            if nested is not None:
                # A nested class: its body was evaluated against the live nested class, patched the same way.
                if self.patch_class(old, nested, old_member_stmts.get(key), member_stmts.get(key), name,
                                    nested_plans.get(key)) or \
                        key in changed_names:
                    self.patched.append(name)
                    changed = True
                continue
            old_member = old_member_stmts.get(key)
            # A wrapper around a method whose statement has no decorators was put there by other code.
            pairs = _function_pairs(old, new, self.path,
                                    runtime_wrapper=old_member is not None and not old_member.decorators)
            if pairs is not None:
                for target, fn_donor in pairs:
                    self.patch_function(target, fn_donor, old_member_stmts.get(key), member_stmts.get(key))
                if key in changed_names:
                    self.after.extend(_cache_clears(old))
                    self.patched.append(name)
                    old_values[key], new_values[key] = old, new
                    changed = True
                continue
            if key in unchanged or new is old:
                continue  # class-level state from an unchanged statement survives
            if _same(old, new):
                continue
            self.ops.append(_native.SetAttr(live, key, new))
            set_names.append((key, new))
            old_values[key], new_values[key] = old, new
            if key in changed_names:
                self.patched.append(name)
            changed = True
        for key in list(live_dict):
            if key in ns or key in _CLASS_KEEP or key in machinery_owned:
                continue
            if key in old_bound or (key == "__annotations__" and not body.ns.get("__annotations__")):
                old_values[key] = live_dict[key]
                self.ops.append(_native.DelAttr(live, key))
                if key != "__annotations__":
                    self.removed.append(f"{qualname}.{key}")
                changed = True
        if old_values or new_values:
            change = _hooks.ClassChange(self.module.__name__, live, old_values, new_values)
            try:
                _hooks.run_before(change)
            except _hooks.NeedsRestart as exc:
                # Nothing of this class is applied: it keeps its old members, and the report asks for a restart.
                self._rewind(mark)
                self.needs_restart.append(f"cannot patch {self.module.__name__}.{qualname}: {exc}; a restart is needed")
                return False
            except Exception as exc:
                raise ReloadFailed(f"{self.path}:{new_stmt.lineno if new_stmt else 0}: the change of {qualname} "
                                   f"was refused by a hook: {type(exc).__name__}: {exc}") from None
            self._changes.append(change)
        self._finish.append((live, body, old_stmt, new_stmt, set_names, qualname))
        return changed

    def _mark(self) -> tuple:
        """Where the queued work stands, for ``_rewind`` (a class a hook refuses to have patched)."""
        lists = (self.ops, self.after, self.patched, self.added, self.removed, self._nested, self._finish,
                 self._changes)
        return tuple(len(x) for x in lists), set(self._targets)

    def _rewind(self, mark: tuple) -> None:
        lengths, targets = mark
        lists = (self.ops, self.after, self.patched, self.added, self.removed, self._nested, self._finish,
                 self._changes)
        for queued, length in zip(lists, lengths):
            del queued[length:]
        self._targets = targets

    def evaluate_class(self, stmt, live: type) -> "ClassBody":
        """Runs the class statement (without its decorators) so that its body fills a prepared namespace
        instead of making a class: ``__build_class__`` is replaced, on this thread and for this statement's
        own class bodies only, by one that runs each body against the live class (and nested bodies against
        the live nested classes) and returns the live class. Functions made by the body get the module's
        own namespace as ``__globals__``."""
        code = self._compile(stmt.def_text, stmt.def_lineno)
        builder = _BuildClass(self, {stmt.name: live}, code)
        with builder.installed():
            self._exec(code, self.namespace, {})
        if stmt.name not in builder.tops:
            raise ReloadFailed(f"{self.path}:{stmt.lineno}: the class statement of {stmt.name} ran no class body")
        return builder.tops[stmt.name]

    def _old_block_classes(self, old_stmts: Sequence[Any], names: Iterable[str]) -> Dict[str, List["_BlockClass"]]:
        """The `class` statements of ``names`` in the old source, in source order: inside its blocks (a changed
        block is not paired with its old text, so the old statements are searched), or at the top level (a
        class moved into a block)."""
        found: Dict[str, List[_BlockClass]] = {}
        for old in old_stmts:
            wanted = [name for name in names if name in old.binds and name not in found]
            if old.kind == "other" and wanted:
                defs = _block_classes(ast.parse(old.text), old.text.splitlines(keepends=True))
                found.update((name, defs[name]) for name in wanted if name in defs)
            elif old.kind == "class" and old.name in wanted:
                found[old.name] = [_BlockClass.from_stmt(old)]
        return found

    def _made_elsewhere(self, stmt) -> bool:
        """A `class` statement whose name holds this module's class of that name, or an undecorated `def` whose
        name holds a plain function of this file of that name."""
        live = self.live(stmt.name) if stmt.name else _MISSING
        if stmt.kind == "class":
            return self._is_own_class(live, stmt.name)
        return stmt.kind == "def" and not stmt.decorators and isinstance(live, types.FunctionType) and \
            live.__code__.co_filename == self.path and live.__code__.co_name == stmt.name

    def _is_own_class(self, obj: Any, name: str) -> bool:
        """``obj`` is the class this module's top-level statement ``class name`` made."""
        return isinstance(obj, type) and obj.__module__ == self.module.__name__ and obj.__qualname__ == name

    def run_block_classes(self, stmt, old_stmt, classes: Dict[str, type]) -> None:
        """Runs a block statement (``if``, ``try``, ``with``...) whose classes ``classes`` exist: their bodies run
        against the live classes (no second class is made), their members are patched as a top-level class's,
        and their decorators are applied as a top-level class's (deriving ones again, others only when their
        text changed). A class that cannot be patched in place is made anew, and the report says why."""
        source = "\n" * (stmt.lineno - 1) + stmt.text
        tree = ast.parse(source)
        new_defs = _block_classes(tree, source.splitlines(keepends=True))
        old_defs = self._old_block_classes([old_stmt] if old_stmt is not None else self.old_stmts, classes)
        if old_stmt is not None and len(old_defs) < len(classes):
            old_defs = {**self._old_block_classes(self.old_stmts, classes), **old_defs}
        for node in _flat_body(tree.body):
            if isinstance(node, ast.ClassDef) and node.name in classes:
                node.decorator_list = []  # applied once the body is patched (`_finish_class`)
        code = compile(tree, self.path, "exec", self.flags, dont_inherit=True)
        builder = _BuildClass(self, classes, code, block=new_defs)
        with builder.installed():
            self.run(stmt, code)
        for name, body in builder.tops.items():
            live = classes[name]
            if self.namespace.get(name) is not live:
                continue  # made anew (a layout change), or bound again later in the block
            # The branch that ran defines the class (`if X: class A ... else: class A ...`); the old definition
            # is the one the live class was made from: the one whose members it has (the same place among the
            # old block's definitions of the name when several fit).
            choices = new_defs.get(name, [])
            new_def = _ran(choices, builder.lines.get(name))
            if new_def is None:
                continue
            olds = old_defs.get(name) or [None]
            place = olds[min(choices.index(new_def), len(olds) - 1)]
            fitting = [old for old in olds if old is not None and all(key in live.__dict__ for key in old.member_texts)]
            old_def = place if place in fitting or not fitting else max(fitting, key=lambda old: len(old.member_texts))
            if self.patch_class(live, body, old_def, new_def, name, _BlockMemberPlan(old_def, new_def)):
                self.patched.append(name)
        self.finish_classes()

    def evaluate_body(self, func: types.FunctionType, name: str, bases: tuple, kwds: Dict[str, Any], live: type,
                      builder: "_BuildClass") -> "ClassBody":
        """What ``__build_class__`` would compute for a class, short of calling the metaclass."""
        resolved = types.resolve_bases(bases)
        kwds = dict(kwds)
        meta = kwds.pop("metaclass", None)
        if meta is None:
            meta = type(resolved[0]) if resolved else type
        if isinstance(meta, type):
            meta = _most_derived_meta(meta, resolved)
        prepare = getattr(meta, "__prepare__", None)
        ns = prepare(name, resolved, **kwds) if prepare is not None else {}
        self.touch_class(live)
        closure = func.__closure__
        if closure and sys.version_info < (3, 11):
            raise ReloadFailed(f"{self.path}: the body of {name} needs a closure, which exec() takes from 3.11")
        builder.stack.append((None, live, _child_codes(func.__code__)))
        try:
            if closure:
                exec(func.__code__, func.__globals__, ns, closure=closure)  # type: ignore[call-arg]
            else:
                exec(func.__code__, func.__globals__, ns)
        finally:
            builder.stack.pop()
        if resolved is not bases and tuple(resolved) != tuple(bases):
            ns["__orig_bases__"] = bases
        body = ClassBody(live, ns, tuple(resolved) or (object,), meta, kwds)
        self._bodies[id(live)] = body
        return body

    def touch_class(self, cls: type) -> None:
        """Records ``cls``'s members before anything of this reload writes to it, to put them back on failure."""
        if id(cls) not in self._touched:
            self._touched.add(id(cls))
            self._undo.append(("class", cls, dict(cls.__dict__)))

    def finish_classes(self) -> None:
        """Redoes the derived machinery of the classes patched since the last call (innermost first), on the
        live classes themselves, once their new members are in place."""
        entries, self._finish = self._finish, []
        if not entries:
            return
        self.flush()
        for live, body, old_stmt, new_stmt, set_names, qualname in entries:
            try:
                self._finish_class(live, body, old_stmt, new_stmt, set_names, top="." not in qualname)
            except ReloadFailed:
                raise
            except Exception as exc:
                raise ReloadFailed(_format_user_error(exc, self.path, new_stmt.lineno if new_stmt else None)) from None
            if isinstance(live, abc.ABCMeta):
                self.after.append(functools.partial(_machinery.update_abstractmethods, live))

    def _finish_class(self, live: type, body: "ClassBody", old_stmt, new_stmt, set_names, top: bool) -> None:
        ns = body.ns
        _machinery.update_hash(live, ns)
        if _machinery.is_namedtuple(live):
            _machinery.redo_namedtuple(live, ns)
        if _machinery.is_enum(live):
            _machinery.redo_enum(live, ns, _machinery.enum_member_names(ns))
        if _machinery.is_typeddict(live):
            _machinery.redo_typeddict(live, body.meta, body.bases, ns, body.kwds)
        _machinery.set_names(live, set_names)
        _machinery.update_protocol(live)
        old_decorators = list(old_stmt.decorators) if old_stmt is not None else []
        new_decorators = list(new_stmt.decorators) if new_stmt is not None else []
        for text in old_decorators:
            if text not in new_decorators:
                dropped = self._deriving_decorator(text)
                if dropped is not None:
                    _machinery.strip_deriving(dropped, live, self.path, ns)
        result: Any = live
        for text in reversed(new_decorators):
            if self._deriving_decorator(text) is not None:
                decorator = self._eval(text, new_stmt.lineno)
                _machinery.strip_deriving(decorator, live, self.path, ns)
            elif top and (text not in old_decorators or text in self._redecorate.get(new_stmt.name, ())):
                decorator = self._eval(text, new_stmt.lineno)
                self.notes.append(f"{live.__qualname__}: class decorator @{text} applied again to the live class")
            else:
                continue  # an unchanged decorator is not called again (a nested class's ran with its body)
            result = decorator(result)
            self._decorated.append(live)
        if top and result is not live:
            # As a fresh import would, the name holds what the decorators returned (a new class).
            self.ops.append(_native.SetItem(self.namespace, new_stmt.name, result))
            self.needs_restart.append(f"cannot patch {self.module.__name__}.{new_stmt.name} in place: its class "
                                      "decorators returned another class; a restart is needed")

    def _deriving_decorator(self, text: str) -> Any:
        head = text.split("(", 1)[0].strip()
        try:
            found = eval(head, self.namespace)  # a dotted name: no call, no side effect
        except Exception:
            return None
        return found if _machinery.is_deriving(found) else None

    def _eval(self, text: str, lineno: int) -> Any:
        code = compile("\n" * (lineno - 1) + "(" + text + ")", self.path, "eval", self.flags, dont_inherit=True)
        try:
            return eval(code, self.namespace)
        except BaseException as exc:  # noqa: BLE001 - as in _exec
            raise ReloadFailed(_format_user_error(exc, self.path)) from None

    # --- committing -------------------------------------------------------------------------------------------

    def flush(self, last: bool = False) -> None:
        """Applies the queued writes now (with ``last``, even none: the commit is always one native step), keeping
        what undoes them.

        The undo entry is in place before the native step runs, and the native step fills it before it returns,
        so an exception raised at any bytecode boundary (a signal handler, a profiler) finds every applied batch
        in ``_undo``."""
        if self.ops or last:
            record: List[List[_native.Op]] = []
            self._undo.append(("ops", record))
            try:
                _native.apply(self.ops, undo=record)  # appends the batch's inverse ops to `record`
            except Exception as exc:  # the native step undid its own writes
                self._undo.pop()
                raise ReloadFailed(f"{self.path}: could not apply the reload, nothing was changed: "
                                   f"{type(exc).__name__}: {exc}") from None
            self.ops = []

    def rollback(self) -> None:
        """Undoes the batches already applied, puts back the members of every class this reload wrote to
        directly, and puts the namespace back as it was before anything ran."""
        with _interrupts_deferred():
            while self._undo:
                entry = self._undo[-1]
                if entry[0] == "ops":
                    for inverse in reversed(entry[1]):
                        _native.apply(inverse)
                else:
                    _restore_class(entry[1], entry[2])
                self._undo.pop()
            if self.snapshot is None:
                return
            ops: List[_native.Op] = [_native.SetItem(self.namespace, k, v) for k, v in self.snapshot.items()
                   if self.namespace.get(k, _MISSING) is not v]
            ops += [_native.DelItem(self.namespace, k) for k in list(self.namespace) if k not in self.snapshot]
            _native.apply(ops)

    def commit(self, record: Optional[Callable[[], object]] = None) -> None:
        """Applies the last batch and then ``record`` (the new baseline), with Ctrl-C held back until both are
        done. Raises ReloadFailed if the native step refused the batch (it undid its own writes). Any exception
        that escapes (a held-back Ctrl-C, one raised by a profiler as the native step returns) finds the batch in
        ``_undo``: the caller rolls back and puts the old baseline back, so the reload is all old or all new."""
        with _interrupts_deferred():
            self.flush(last=True)
            if record is not None:
                record()

    def finish(self) -> None:
        """What runs once the reload can no longer be undone: post-reload steps, hooks, the line cache."""
        global _reloads_done
        _reloads_done += 1
        if self._code_changed:
            changes = _CODE_CHANGES.setdefault(self.module.__name__, {})
            changes.update(dict.fromkeys(self._code_changed, _reloads_done))
        for cls in self._decorated:
            try:
                _DECORATED[cls] = _reloads_done
            except TypeError:
                pass
        for callback in self.after:
            try:
                callback()
            except Exception:
                logger.exception("%s: post-reload step %r failed", self.module.__name__, callback)
        for change in self._changes:
            _hooks.run_after(change)
        lines = self.text.splitlines(keepends=True)
        linecache.cache[self.path] = (len(self.text), None, lines, self.path)
        linecache.checkcache(self.path)  # drops the pinned entry if disk differs; keeps it when it matches


# --- helpers ------------------------------------------------------------------------------------------------------

def _func_op(func, *, code=None, closure=_MISSING, defaults=_MISSING, kwdefaults=_MISSING, annotations=_MISSING,
             doc=_MISSING, type_params=None) -> _native.PatchFunction:
    return _native.PatchFunction(
        func,
        func.__code__ if code is None else code,
        func.__closure__ if closure is _MISSING else closure,
        func.__defaults__ if defaults is _MISSING else defaults,
        func.__kwdefaults__ if kwdefaults is _MISSING else kwdefaults,
        func.__annotations__ if annotations is _MISSING else annotations,
        func.__doc__ if doc is _MISSING else doc,
        type_params,
    )


@contextlib.contextmanager
def _interrupts_deferred():
    """Holds Ctrl-C's KeyboardInterrupt (SIGINT's handler) until the block is done, then raises it.

    A signal handler runs at the first bytecode boundary after a C call returns, which can be between the native
    apply step and the line recording what it did. Only the main thread runs signal handlers, so elsewhere there
    is nothing to hold.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):
        yield
        return
    caught: List[Any] = []
    try:
        signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            previous(signal.SIGINT, caught[0])


def _code_kind(code: types.CodeType) -> int:
    """Whether calling a function of ``code`` makes a generator, a coroutine or an async generator."""
    return code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR)


def unbound_names(old_stmts: Sequence[Any], new_stmts: Sequence[Any]) -> Tuple[str, ...]:
    """Names the old source binds and the new one does not: a reload removes them, which rebinds them (to a
    builtin of that name, or to nothing) for every statement that reads them."""
    bound = {name for stmt in new_stmts for name in stmt.binds}
    return tuple(sorted({name for stmt in old_stmts for name in stmt.binds} - bound))


def _forwarder(target: Any) -> types.FunctionType:
    def forward(*args, **kwargs):  # what a reference to a function that got decorators calls
        return target(*args, **kwargs)

    return forward


_FORWARD_CODE = _forwarder(None).__code__
# Functions turned into forwarders (held weakly): when their target's decorators change again, they follow.
_FORWARDERS: "weakref.WeakSet[types.FunctionType]" = weakref.WeakSet()


def forwards_to(func: Any) -> Any:
    """What a function a reload turned into a forwarder calls (decorators were added to its definition: it calls
    the decorated version the name now holds), or None."""
    if isinstance(func, types.FunctionType) and func.__code__ is _FORWARD_CODE and func.__closure__:
        return func.__closure__[0].cell_contents
    return None


def _join_family(old: types.FunctionType, new: types.FunctionType) -> None:
    family = _FAMILIES.get(old)
    if family is None:
        family = _FAMILIES[old] = weakref.WeakSet([old])
    for func in list(_FAMILIES.get(new, ())) + [new]:
        family.add(func)
    for func in list(family):
        _FAMILIES[func] = family


def _leave_behind(func: types.FunctionType, superseding: types.CodeType) -> None:
    _forget_left_behind(func)
    _LEFT_BEHIND.setdefault(superseding, weakref.WeakSet()).add(func)


def _forget_left_behind(func: types.FunctionType) -> None:
    for group in list(_LEFT_BEHIND.values()):
        group.discard(func)


def _same_definition(old: Any, new: Any, path: str) -> bool:
    """Two plain functions of this file with the same name (or both lambdas): a new version of one definition."""
    return (isinstance(old, types.FunctionType) and isinstance(new, types.FunctionType) and old is not new
            and old.__code__.co_filename == path == new.__code__.co_filename
            and old.__code__.co_name == new.__code__.co_name
            and len(old.__closure__ or ()) == len(new.__closure__ or ()) == 0)


def _docstring(stmts: Sequence[Any]) -> Optional[str]:
    """The module docstring of split source: its first statement, when that is a bare string literal."""
    if not stmts or stmts[0].kind != "other" or stmts[0].binds:
        return None
    try:
        value = ast.literal_eval(stmts[0].text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, str) else None


def _source_doc(code: types.CodeType) -> Optional[str]:
    # Up to 3.13 a function's docstring is its first constant (None stands in when there is none).
    first = code.co_consts[0] if code.co_consts else None
    return first if isinstance(first, str) and code.co_name != "<lambda>" else None


def _cache_clears(obj: Any) -> List[Callable[[], object]]:
    """The ``cache_clear`` of every cache wrapper in ``obj`` (``lru_cache`` under ``classmethod``, say)."""
    return [item.cache_clear for item in _unwrap_candidates(obj) if callable(getattr(item, "cache_clear", None))]


def _default_values(func: types.FunctionType) -> List[Any]:
    return list(func.__defaults__ or ()) + list((func.__kwdefaults__ or {}).values())


def _positional_default_names(func: types.FunctionType) -> Sequence[str]:
    code = func.__code__
    positional = code.co_varnames[: code.co_posonlyargcount + code.co_argcount]
    count = len(func.__defaults__ or ())
    return positional[len(positional) - count:] if count else ()


def _future_flags(stmts) -> int:
    flags = 0
    for stmt in stmts:
        if stmt.kind != "other":
            continue
        text = stmt.text
        if text.startswith("from __future__ import"):
            for name in text.split("import", 1)[1].replace("(", " ").replace(")", " ").replace(",", " ").split():
                if name in _FLAGGED_FEATURES:
                    flags |= getattr(__future__, name).compiler_flag
    return flags


# The only features CPython's compiler still turns into code flags (Python/future.c); the others are always on,
# and passing their flags to compile() would stamp them into code objects, unlike an import.
_FLAGGED_FEATURES = frozenset({"annotations", "barry_as_FLUFL"})


def _format_user_error(exc: BaseException, path: str, lineno: Optional[int] = None) -> str:
    """The exception's type, whole message and traceback from the first frame in the user's file on; where no
    frame is in that file (a class decorator applied by the reload), ``lineno`` names the statement."""
    import traceback

    tb = exc.__traceback__
    # Drop hotswap's own frames: the first frame of interest is the user's file.
    while tb is not None and tb.tb_frame.f_code.co_filename != path:
        tb = tb.tb_next
    if tb is not None:
        return "".join(traceback.format_exception(type(exc), exc, tb))
    text = "".join(traceback.format_exception_only(type(exc), exc))
    if isinstance(exc, SyntaxError) and exc.filename:
        return text  # a SyntaxError names its file and line itself
    where = f'  File "{path}", line {lineno}\n' if lineno else f'  File "{path}"\n'
    inner = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).splitlines(keepends=True)
    return "Traceback (most recent call last):\n" + where + "".join(inner[1:] if len(inner) > 1 else [text])


def _unwrap_candidates(obj: Any) -> Iterable[Any]:
    seen: Set[int] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen or len(seen) > 32:
            continue
        seen.add(id(item))
        yield item
        for attr in ("__wrapped__", "__func__", "func", "fget"):
            inner = getattr(item, attr, None) if not isinstance(item, type) else None
            if inner is not None:
                stack.append(inner)
        if isinstance(item, types.FunctionType) and item.__closure__:
            for cell in item.__closure__:
                try:
                    stack.append(cell.cell_contents)
                except ValueError:
                    pass


def find_function(obj: Any, name: str, path: str, stmt=None, namespace=None) -> Optional[types.FunctionType]:
    """The plain function named ``name`` from ``path`` that ``obj`` is or wraps (decorators, partials).

    With ``stmt`` (the statement that made it), the function must also start at that statement's lines; if
    ``obj`` holds no such function (several `def _` registered with singledispatch share one name), it is
    looked for in the registry its `@x.register` decorator names (``x`` resolved in ``namespace``), else among
    all live functions.
    """
    lines = None if stmt is None else {stmt.lineno, stmt.def_lineno}

    def made_here(item: Any) -> bool:
        if not isinstance(item, types.FunctionType):
            return False
        code = item.__code__
        return code.co_name == name and code.co_filename == path and (lines is None or code.co_firstlineno in lines)

    for item in _unwrap_candidates(obj):
        if made_here(item):
            return item
    if lines is None:
        return None
    for registry in _registries(stmt.decorators, namespace):
        for value in list(registry.values()):
            for item in _unwrap_candidates(value):
                if made_here(item):
                    return item
    return _native.find_defined_function(name, path, sorted(lines))


# `x.register`, `x.y.register(int)`: the dispatcher a singledispatch-style registration decorator names.
_REGISTER = re.compile(r"([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*)\s*\.\s*register\b")


def _registries(decorators: Iterable[str], namespace: Optional[dict]) -> Iterable[collections.abc.Mapping]:
    """The ``registry`` mappings of the dispatchers that ``decorators`` register with (`@show.register`,
    `@lib.to_json.register(int)`), looked up by name in ``namespace``: where a `def _` overwritten by the next one
    still lives, found without a search of the heap."""
    if namespace is None:
        return
    for text in decorators:
        match = _REGISTER.match(text)
        if match is None:
            continue
        first, *rest = (part.strip() for part in match.group(1).split("."))
        obj = namespace.get(first, _MISSING)
        for part in rest:
            if obj is _MISSING:
                break
            # Only what a module, class or function holds in its own namespace: no descriptor runs.
            own = getattr(obj, "__dict__", None) if isinstance(obj, (types.ModuleType, type, types.FunctionType)) \
                else None
            obj = own.get(part, _MISSING) if own is not None else _MISSING
        registry = getattr(obj, "registry", None) if isinstance(obj, types.FunctionType) else None
        if isinstance(registry, collections.abc.Mapping):
            yield registry


def _function_pairs(old: Any, new: Any, path: str, runtime_wrapper: bool = False,
                    ) -> Optional[List[Tuple[types.FunctionType, types.FunctionType]]]:
    """Pairs of (live function, donor function) to patch for a class attribute, or None if the two are not the
    same kind of thing (then the attribute is replaced). With ``runtime_wrapper``, a wrapper (``__wrapped__``)
    around the live function was put there by other code, not by the source: it stays."""
    if type(old) is not type(new):
        return None
    if hasattr(old, "__wrapped__") and hasattr(new, "__wrapped__"):
        # A decorator's wrapper: its own code belongs to the decorator; patch what it wraps.
        return _function_pairs(old.__wrapped__, new.__wrapped__, path)
    if runtime_wrapper and isinstance(old, types.FunctionType) and old.__code__.co_filename != path and \
            isinstance(getattr(old, "__wrapped__", None), types.FunctionType) and not hasattr(new, "__wrapped__"):
        # A wrapper that other code put around the method after the class was made (instrumentation, a
        # framework tracking instances): it stays, and what it wraps gets the new code.
        return _function_pairs(old.__wrapped__, new, path)
    if isinstance(old, types.FunctionType):
        if old.__code__ is new.__code__:
            return []
        if old.__code__.co_filename != path:
            return None  # not defined here (a function a decorator or another module made, maybe shared): replaced
        return [(old, new)]
    if isinstance(old, (staticmethod, classmethod)):
        return _function_pairs(old.__func__, new.__func__, path)
    if isinstance(old, property):
        pairs: List[Tuple[types.FunctionType, types.FunctionType]] = []
        for attr in ("fget", "fset", "fdel"):
            a, b = getattr(old, attr), getattr(new, attr)
            if (a is None) != (b is None):
                return None
            if a is not None:
                inner = _function_pairs(a, b, path)
                if inner is None:
                    return None
                pairs += inner
        return pairs
    if isinstance(old, functools.cached_property):
        return _function_pairs(old.func, new.func, path)
    return None


def _class_functions(cls: type, path: str) -> Iterable[types.FunctionType]:
    for value in list(cls.__dict__.values()):
        if isinstance(value, type) and value.__qualname__.startswith(cls.__qualname__ + "."):
            yield from _class_functions(value, path)
            continue
        accessors = [value.fset, value.fdel] if isinstance(value, property) else []  # fget is unwrapped below
        for item in [found for part in [value, *accessors] for found in _unwrap_candidates(part)]:
            if isinstance(item, types.FunctionType) and item.__code__.co_filename == path:
                yield item


def incompatible(live: type, body: "ClassBody") -> Optional[str]:
    """Why the evaluated ``body`` cannot be given to ``live`` in place (a different layout), or None."""
    meta = body.meta
    # typing's NamedTuple and TypedDict metaclasses make a class of other bases (tuple, dict) than those written.
    factory = getattr(meta, "__module__", None) == "typing" and getattr(meta, "__name__", "") in (
        "NamedTupleMeta", "_TypedDictMeta")
    if factory:
        if (meta.__name__ == "NamedTupleMeta") != _machinery.is_namedtuple(live):
            return f"metaclass changed {type(live).__name__} -> {meta.__name__}"
    else:
        if meta is not type(live):
            return f"metaclass changed {type(live).__name__} -> {getattr(meta, '__name__', meta)}"
        if body.bases != live.__bases__:
            names = lambda bases: "(" + ", ".join(b.__qualname__ for b in bases) + ")"  # noqa: E731
            return f"bases changed {names(live.__bases__)} -> {names(body.bases)}"
    old_slots = live.__dict__.get("__slots__", _MISSING)
    new_slots = body.ns.get("__slots__", old_slots if factory else _MISSING)
    if _slots(old_slots) != _slots(new_slots):
        return f"__slots__ changed {_slots(old_slots)!r} -> {_slots(new_slots)!r}"
    # ctypes Structure and Union: `_fields_` is the instance layout, and final once set.
    old_fields = live.__dict__.get("_fields_", _MISSING)
    new_fields = body.ns.get("_fields_", _MISSING)
    if old_fields is not _MISSING and type(live).__module__ == "_ctypes" and not _same(old_fields, new_fields):
        return "_fields_ changed (the instance layout)"
    return None


def _slots(value: Any) -> Any:
    if value is _MISSING:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _same(old: Any, new: Any) -> bool:
    if old is new:
        return True
    if type(old) is not type(new) or isinstance(old, (types.FunctionType, type)):
        return False
    try:
        return bool(old == new)
    except Exception:
        return False


def _nested_code_pairs(old: types.CodeType, new: types.CodeType) -> List[Tuple[types.CodeType, types.CodeType]]:
    """Nested code objects of ``old`` and ``new`` matched by name path and order (lambdas by order)."""
    def children(code):
        counts: Dict[str, int] = {}
        out = {}
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                counts[const.co_name] = counts.get(const.co_name, 0) + 1
                out[(const.co_name, counts[const.co_name])] = const
        return out

    pairs = []
    stack = [(old, new)]
    while stack:
        a, b = stack.pop()
        old_children, new_children = children(a), children(b)
        for k, old_child in old_children.items():
            new_child = new_children.get(k)
            if new_child is not None:
                pairs.append((old_child, new_child))
                stack.append((old_child, new_child))
    return pairs


def _shift_lines(code: types.CodeType, delta: int) -> types.CodeType:
    # A 3.13 class body stores its first line as a constant for `__firstlineno__`: it moves with the code.
    first = code.co_firstlineno if "__firstlineno__" in code.co_names else None
    consts = tuple(
        _shift_lines(c, delta) if isinstance(c, types.CodeType)
        else c + delta if type(c) is int and c == first else c
        for c in code.co_consts)
    return code.replace(co_firstlineno=code.co_firstlineno + delta, co_consts=consts)


class _NoMemberPlan:
    """Stands in for the planner's ``MemberPlan`` where it has none (a nested class a body defines inside a block):
    no member counts as unchanged, so every value is compared."""

    unchanged: Tuple[str, ...] = ()
    changed: Tuple[str, ...] = ()
    old_bound: Tuple[str, ...] = ()
    statements: Tuple[Tuple[str, int, Optional[int]], ...] = ()
    nested: Tuple[Tuple[str, Any], ...] = ()


_NO_MEMBER_PLAN = _NoMemberPlan()


class _UnchangedMemberPlan(_NoMemberPlan):
    """The member plan of a class body that did not change (its decorators run again): every member is
    unchanged, so class-level state survives and nothing is removed."""

    def __init__(self, members: Sequence[Any]) -> None:
        last: Dict[str, int] = {}
        for i, member in enumerate(members):
            for name in member.binds:
                last[name] = i
        self.unchanged = tuple(last)
        self.old_bound = self.unchanged
        self.statements = tuple((name, i, i) for name, i in last.items())
        self.nested = tuple((member.name, _UnchangedMemberPlan(member.members)) for member in members
                            if member.kind == "class")


class _Step:
    """A step the engine adds to the planner's (``Transaction.steps``), with the same fields."""

    __slots__ = ("index", "old_index", "action", "reason", "members")

    def __init__(self, index: int, old_index: Optional[int], action: str, reason: str, members: Any) -> None:
        self.index, self.old_index, self.action, self.reason, self.members = index, old_index, action, reason, members


def _code_names(code: types.CodeType) -> Set[str]:
    """The global and attribute names ``code`` and the code nested in it use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


class _BlockMemberPlan(_NoMemberPlan):
    """The member plan of a class defined inside a block statement, from the old and new class nodes: members
    whose statement text is the same are unchanged (their class-level state survives), the others changed, and
    names only the old body bound are removed."""

    def __init__(self, old: Optional["_BlockClass"], new: "_BlockClass") -> None:
        old_texts = {name: _normal_text(text) for name, text in (old.member_texts if old is not None else {}).items()}
        new_texts = {name: _normal_text(text) for name, text in new.member_texts.items()}
        self.unchanged = tuple(name for name, text in new_texts.items() if old_texts.get(name) == text)
        self.changed = tuple(name for name in new_texts if name not in self.unchanged)
        self.old_bound = tuple(name for name in old_texts if name not in new_texts)


class _BlockClass:
    """Stands in for the planner's statement of a class defined inside a block (``if``, ``try``...): its name,
    first line, decorator texts, and the text of the body statement binding each member."""

    members: Tuple[Any, ...] = ()

    def __init__(self, node: Optional[ast.ClassDef], lines: Sequence[str]) -> None:
        self.member_texts: Dict[str, str] = {}
        if node is None:
            return
        self.name = node.name
        self.lineno = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        self.def_lineno = node.lineno  # where its body's code starts once its decorators are taken off
        self.decorators = [_node_text(d, lines) for d in node.decorator_list]
        for stmt in _flat_body(node.body):
            text = _node_text(stmt, lines)
            for name in _stmt_binds(stmt):
                self.member_texts[name] = text

    @classmethod
    def from_stmt(cls, stmt: Any) -> "_BlockClass":
        """The same, for a top-level `class` statement of the planner."""
        out = cls(None, ())
        out.name, out.lineno, out.def_lineno = stmt.name, stmt.lineno, stmt.def_lineno
        out.decorators = list(stmt.decorators)
        for member in stmt.members:
            for name in member.binds:
                out.member_texts[name] = member.text
        return out


def _block_classes(tree: ast.Module, lines: Sequence[str]) -> Dict[str, List[_BlockClass]]:
    """The classes a block statement (``tree``'s only statement) defines in its branches, by name, in source
    order."""
    out: Dict[str, List[_BlockClass]] = {}
    for node in _flat_body(tree.body):
        if isinstance(node, ast.ClassDef):
            out.setdefault(node.name, []).append(_BlockClass(node, lines))
    return out


def _normal_text(text: str) -> str:
    """A member statement's text without the indentation of where it stands (a block's class, or a top-level
    one's: the planner's text starts at the statement, a block's at its line)."""
    first, _, rest = text.strip("\n").partition("\n")
    return first.strip() + "\n" + textwrap.dedent(rest).rstrip()


def _ran(defs: Sequence[_BlockClass], lineno: Optional[int]) -> Optional[_BlockClass]:
    """Which of a block's definitions of a class ran: the one whose body starts at ``lineno``."""
    return next((d for d in defs if d.def_lineno == lineno), None)


def _patchable_in_block(text: str, names: Iterable[str]) -> bool:
    """Each of ``names`` is defined by at most one ``class`` statement of any path through the block statement
    ``text``: once, or in branches of which only one runs (``if``/``else``, the body of a ``try`` and its
    handlers, the cases of a ``match``). A name defined twice in a row (``class A`` then ``class A(A)``) is
    not: the statement runs as written."""
    found: Dict[str, List[Tuple[Tuple[int, str], ...]]] = {}
    for node, path in _branch_paths(ast.parse(text).body, ()):
        if isinstance(node, ast.ClassDef):
            found.setdefault(node.name, []).append(path)
    for name in names:
        paths = found.get(name, [])
        if not paths or any(not _exclusive(a, b) for i, a in enumerate(paths) for b in paths[i + 1:]):
            return False
    return True


def _branch_paths(body: Sequence[ast.stmt], path: Tuple[Tuple[int, str], ...]):
    """The statements of ``body`` and of its blocks' branches, each with the branches it is in, from the outside
    in: (id of the block node, which branch), where branches of which only one runs are named "one of ..."."""
    for node in body:
        yield node, path
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        exclusive = isinstance(node, ast.If)
        for field in ("body", "orelse", "finalbody"):
            branch = f"one of {field}" if exclusive else field
            yield from _branch_paths(getattr(node, field, None) or (), path + ((id(node), branch),))
        # A `try` body and its handlers: the statement the body defined is defined again by a handler only if the
        # body failed, so that is taken as one of them running.
        for i, handler in enumerate(getattr(node, "handlers", None) or ()):
            yield from _branch_paths(handler.body, path + ((id(node), f"one of handler {i}"),))
        for i, case in enumerate(getattr(node, "cases", None) or ()):
            yield from _branch_paths(case.body, path + ((id(node), f"one of case {i}"),))


def _exclusive(a: Tuple[Tuple[int, str], ...], b: Tuple[Tuple[int, str], ...]) -> bool:
    """Two statements in different branches of one block of which only one runs."""
    for (node_a, branch_a), (node_b, branch_b) in zip(a, b):
        if node_a != node_b:
            return False
        if branch_a == branch_b:
            continue
        pair = {branch_a, branch_b}
        # Branches of one `if` or `match`, two handlers, or a `try`'s body (or else) and one of its handlers.
        return all(branch.startswith("one of ") for branch in pair) or (
            bool(pair & {"body", "orelse"}) and any(branch.startswith("one of handler") for branch in pair))
    return False


def _flat_body(body: Sequence[ast.stmt]) -> Iterable[ast.stmt]:
    """The statements of ``body`` and of the branches of its blocks (not of functions or classes)."""
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _flat_body(getattr(node, field, None) or ())
        for handler in getattr(node, "handlers", None) or ():
            yield from _flat_body(handler.body)
        for case in getattr(node, "cases", None) or ():
            yield from _flat_body(case.body)


def _stmt_binds(node: ast.stmt) -> List[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    targets = node.targets if isinstance(node, ast.Assign) else \
        [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _node_text(node: ast.AST, lines: Sequence[str]) -> str:
    """The source of ``node`` (with its decorators), from whole lines; an expression's exact text."""
    if isinstance(node, ast.expr):
        return ast.get_source_segment("".join(lines), node) or ""
    decorators = getattr(node, "decorator_list", None) or ()
    start = min([d.lineno for d in decorators] + [node.lineno])
    return "".join(lines[start - 1:node.end_lineno])


class ClassBody:
    """What running a class body gave, without making a class: its namespace and its header's values."""

    __slots__ = ("live", "ns", "bases", "meta", "kwds")

    def __init__(self, live: type, ns: Any, bases: tuple, meta: Any, kwds: Dict[str, Any]) -> None:
        self.live = live
        self.ns = ns
        self.bases = bases
        self.meta = meta
        self.kwds = kwds


class _BuildClass:
    """Stands in for ``builtins.__build_class__`` while one changed class statement runs.

    Only calls made on the reloading thread for the class bodies compiled in that statement are intercepted
    (the statement's own class, and classes nested in its body that exist on the live class); any other class
    creation, on any thread, goes to the real ``__build_class__``.
    """

    def __init__(self, tx: Transaction, classes: Dict[str, type], code: types.CodeType,
                 block: Optional[Dict[str, List["_BlockClass"]]] = None) -> None:
        self.tx = tx
        # The statement is a block whose classes' decorators were taken off: their layouts are checked here.
        self.block = block
        self.original = builtins.__build_class__
        self.thread = threading.get_ident()
        # (the live classes of the statement's own class bodies by name, or None for a nested body; the live
        # class whose body runs, or None for the statement; ids of the code objects it may run)
        self.stack: List[Tuple[Optional[Dict[str, type]], Optional[type], Set[int]]] = [
            (classes, None, _child_codes(code))]
        self.tops: Dict[str, ClassBody] = {}  # the evaluated bodies of the statement's own classes, by name
        self.lines: Dict[str, int] = {}  # where each of those bodies starts (which branch of a block ran)

    @contextlib.contextmanager
    def installed(self):
        previous = builtins.__build_class__
        builtins.__build_class__ = self
        try:
            yield self
        finally:
            builtins.__build_class__ = previous

    def __call__(self, func, name, *bases, **kwds):
        if threading.get_ident() != self.thread or not isinstance(func, types.FunctionType):
            return self.original(func, name, *bases, **kwds)
        expected, parent, children = self.stack[-1]
        if id(func.__code__) not in children:
            return self.original(func, name, *bases, **kwds)
        if expected is not None:
            live: Optional[type] = expected.get(name) if name not in self.tops else None
        else:
            candidate = parent.__dict__.get(name) if parent is not None else None
            live = candidate if (isinstance(candidate, type) and parent is not None
                                 and candidate.__module__ == parent.__module__
                                 and candidate.__qualname__ == f"{parent.__qualname__}.{name}") else None
        if live is None:
            return self.original(func, name, *bases, **kwds)  # a new class: made as an import would
        body = self.tx.evaluate_body(func, name, bases, kwds, live, self)
        if expected is not None:
            self.tops[name] = body
            self.lines[name] = func.__code__.co_firstlineno
            if self.block is None:
                return live  # the caller checks the layout (and builds the new class in the module if needed)
        problem = incompatible(live, body)
        if problem is None:
            return live
        self.tx._bodies.pop(id(live), None)
        self.tops.pop(name, None)
        self.tx.needs_restart.append(
            f"cannot patch {self.tx.module.__name__}.{live.__qualname__}: {problem}; a restart is needed")
        cls = self.original(func, name, *bases, **kwds)
        block = _ran(self.block.get(name, []), func.__code__.co_firstlineno) \
            if expected is not None and self.block is not None else None
        for text in reversed(block.decorators if block is not None else ()):
            cls = self.tx._eval(text, block.lineno)(cls)  # as the statement would have (they were taken off)
        return cls


def _child_codes(code: types.CodeType) -> Set[int]:
    """Ids of the code objects ``code`` makes functions or class bodies from (through 3.12's generic scopes)."""
    out: Set[int] = set()
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out.add(id(const))
            if const.co_name.startswith("<generic parameters of "):
                out |= _child_codes(const)
    return out


def _most_derived_meta(meta: type, bases: Sequence[Any]) -> type:
    """The metaclass ``__build_class__`` would pick (CPython's ``_PyType_CalculateMetaclass``)."""
    winner = meta
    for base in bases:
        base_meta = type(base)
        if issubclass(winner, base_meta):
            continue
        if issubclass(base_meta, winner):
            winner = base_meta
            continue
        raise TypeError("metaclass conflict: the metaclass of a derived class must be a (non-strict) subclass "
                        "of the metaclasses of all its bases")
    return winner


def _restore_class(cls: type, members: Dict[str, Any]) -> None:
    current = cls.__dict__
    ops: List[_native.Op] = [_native.SetAttr(cls, key, value) for key, value in members.items()
           if current.get(key, _MISSING) is not value and key not in ("__dict__", "__weakref__")]
    ops += [_native.DelAttr(cls, key) for key in list(current) if key not in members]
    _native.apply(ops)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 60 else line[:57] + "..."
