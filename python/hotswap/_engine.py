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
import builtins
import contextlib
import functools
import linecache
import logging
import sys
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


# Every function object that has come from one definition (the first made, and one more each time its
# decorators changed and the statement ran again): a patch of one is a patch of all, so a reference taken
# before `@tag(1)` became `@tag(2)` keeps following the body. Each member maps to the group's shared set.
_FAMILIES: "weakref.WeakKeyDictionary[types.FunctionType, weakref.WeakSet]" = weakref.WeakKeyDictionary()

# Closures left unpatched (their new code needed a variable they never captured), by the nested code object that
# superseded theirs: a later edit that pairs that code with a newer one tries them again.
_LEFT_BEHIND: "weakref.WeakKeyDictionary[types.CodeType, weakref.WeakSet]" = weakref.WeakKeyDictionary()


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
        # What undoes the work done so far, oldest first: ("ops", inverse ops of an applied batch) or
        # ("class", cls, its members before this reload touched it).
        self._undo: List[tuple] = []

    # --- running code ---------------------------------------------------------------------------------------

    def _compile(self, source: str, lineno: int) -> types.CodeType:
        # Leading newlines put every line where it is in the file: tracebacks and inspect stay right.
        return compile("\n" * (lineno - 1) + source, self.path, "exec", self.flags, dont_inherit=True)

    def _exec(self, code: types.CodeType, namespace: Dict[str, Any], local: Optional[Dict[str, Any]] = None) -> None:
        try:
            exec(code, namespace, namespace if local is None else local)
        except ReloadFailed:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt at import are user errors too
            raise ReloadFailed(_format_user_error(exc, self.path)) from None

    def run(self, stmt) -> None:
        """Runs a statement in the module's namespace (snapshotting the namespace first)."""
        self.flush()
        if self.snapshot is None:
            self.snapshot = dict(self.namespace)
        code = self._compile(stmt.text, stmt.lineno)
        before = set(self.namespace)
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
        self.run(stmt)
        if reason == "acts_on":
            self.notes.append(f"line {stmt.lineno} ran again: it acts on a definition this reload changed")
        if reason == "decorators" and old_obj is not _MISSING:
            # The decorators are applied anew (the name now holds their result).
            target = find_function(old_obj, stmt.name, self.path, old_stmt)
            donor = find_function(self.namespace.get(stmt.name), stmt.name, self.path, stmt)
            if target is not None and donor is not None and target is not donor:
                if target is old_obj and not (old_stmt.decorators if old_stmt is not None else ()):
                    # A decorator added to a plain function: its new code may only work under the decorator
                    # (a generator under @contextmanager), so references taken before keep the old version.
                    self.notes.append(
                        f"{stmt.name}: decorators added; references taken before the edit keep running the old "
                        f"version, {stmt.name} (and new references) run the new one")
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

    def step_patch(self, stmt, reason: str, old_stmt) -> None:
        live = self.live(stmt.name)
        if stmt.kind == "def":
            target = find_function(live, stmt.name, self.path, old_stmt)
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
        if not (isinstance(live, type) and live.__module__ == self.module.__name__ and live.__qualname__ == stmt.name):
            if self.bound_later(stmt):
                return  # an unchanged later statement binds the name (`try: from collections import OrderedDict`)
            self.step_run(stmt, "new", None)
            return
        body = self.evaluate_class(stmt, live)
        problem = incompatible(live, body)
        if problem is not None:
            # Not half-applied: the name gets a new class (built in the module's own namespace), old instances
            # keep their class, and the report says a restart is needed.
            self.needs_restart.append(
                f"cannot patch {self.module.__name__}.{stmt.name}: {problem}; a restart is needed")
            self.run(stmt)
            self.patched.append(stmt.name)
            return
        plan = self.member_plans.get(self.index.get(id(stmt), -1))
        changed = self.patch_class(live, body, old_stmt, stmt, stmt.name, plan)
        self.finish_classes()
        self.rebind(stmt.name, live)
        if changed or reason in ("changed", "reads"):
            self.patched.append(stmt.name)

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
            target = find_function(live, stmt.name, self.path, old_stmt)
            functions = [target] if target is not None else []
        elif isinstance(live, type) and live.__module__ == self.module.__name__:
            functions = list(_class_functions(live, self.path))
            if hasattr(live, "__firstlineno__"):
                self.ops.append(_native.SetAttr(live, "__firstlineno__", live.__firstlineno__ + delta))
        elif stmt.kind == "other":
            # Functions defined inside an unchanged block (`if`, `try`) that moved.
            functions = [item for name in stmt.binds for item in _unwrap_candidates(self.live(name))
                         if isinstance(item, types.FunctionType) and item.__code__.co_filename == self.path
                         and old_stmt.lineno <= item.__code__.co_firstlineno <= old_stmt.end_lineno]
        else:
            functions = []
        for func in functions:
            if id(func) in self._targets:
                continue
            self._targets.add(id(func))
            shifted = _shift_lines(func.__code__, delta)
            self.ops.append(_func_op(func, code=shifted))
            # Closures it made before (a factory's products) move with it: `patch_closures` finds them.
            self._nested.extend(_nested_code_pairs(func.__code__, shifted))

    def remove(self, names: Iterable[str]) -> None:
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
        }
        if not keep:
            return defaults, kwdefaults
        if defaults:
            old_values = dict(zip(_positional_default_names(target), target.__defaults__ or ()))
            defaults = tuple(
                old_values[name] if name in keep and name in old_values else value
                for name, value in zip(_positional_default_names(donor), defaults)
            )
        if kwdefaults:
            old_kw = target.__kwdefaults__ or {}
            kwdefaults = {k: old_kw[k] if k in keep and k in old_kw else v for k, v in kwdefaults.items()}
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
            pairs = _function_pairs(old, new, self.path)
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
        builder = _BuildClass(self, stmt.name, live, code)
        with builder.installed():
            self._exec(code, self.namespace, {})
        if builder.top is None:
            raise ReloadFailed(f"{self.path}:{stmt.lineno}: the class statement of {stmt.name} ran no class body")
        return builder.top

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
            elif top and text not in old_decorators:
                decorator = self._eval(text, new_stmt.lineno)
                self.notes.append(f"{live.__qualname__}: class decorator @{text} applied again to the live class")
            else:
                continue  # an unchanged decorator is not called again (a nested class's ran with its body)
            result = decorator(result)
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


def _source_doc(code: types.CodeType) -> Optional[str]:
    # Up to 3.13 a function's docstring is its first constant (None stands in when there is none).
    first = code.co_consts[0] if code.co_consts else None
    return first if isinstance(first, str) and code.co_name != "<lambda>" else None


def _cache_clears(obj: Any) -> List[Callable[[], object]]:
    """The ``cache_clear`` of every cache wrapper in ``obj`` (``lru_cache`` under ``classmethod``, say)."""
    return [item.cache_clear for item in _unwrap_candidates(obj) if callable(getattr(item, "cache_clear", None))]


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


def find_function(obj: Any, name: str, path: str, stmt=None) -> Optional[types.FunctionType]:
    """The plain function named ``name`` from ``path`` that ``obj`` is or wraps (decorators, partials).

    With ``stmt`` (the statement that made it), the function must also start at that statement's lines; if
    ``obj`` holds no such function (several `def _` registered with singledispatch share one name), it is
    searched for among all live functions.
    """
    lines = None if stmt is None else {stmt.lineno, stmt.def_lineno}
    for item in _unwrap_candidates(obj):
        if isinstance(item, types.FunctionType):
            code = item.__code__
            if code.co_name == name and code.co_filename == path and (lines is None or code.co_firstlineno in lines):
                return item
    if lines is None:
        return None
    return _native.find_defined_function(name, path, sorted(lines))


def _function_pairs(old: Any, new: Any, path: str) -> Optional[List[Tuple[types.FunctionType, types.FunctionType]]]:
    """Pairs of (live function, donor function) to patch for a class attribute, or None if the two are not the
    same kind of thing (then the attribute is replaced)."""
    if type(old) is not type(new):
        return None
    if hasattr(old, "__wrapped__") and hasattr(new, "__wrapped__"):
        # A decorator's wrapper: its own code belongs to the decorator; patch what it wraps.
        return _function_pairs(old.__wrapped__, new.__wrapped__, path)
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
        for item in _unwrap_candidates(value):
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

    def __init__(self, tx: Transaction, name: str, live: type, code: types.CodeType) -> None:
        self.tx = tx
        self.original = builtins.__build_class__
        self.thread = threading.get_ident()
        # (expected name for the top-level statement or None, live class, ids of the code objects it may run)
        self.stack: List[Tuple[Optional[str], type, Set[int]]] = [(name, live, _child_codes(code))]
        self.top: Optional[ClassBody] = None

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
            live: Optional[type] = parent if name == expected and self.top is None else None
        else:
            candidate = parent.__dict__.get(name)
            live = candidate if (isinstance(candidate, type) and candidate.__module__ == parent.__module__
                                 and candidate.__qualname__ == f"{parent.__qualname__}.{name}") else None
        if live is None:
            return self.original(func, name, *bases, **kwds)  # a new class: made as an import would
        body = self.tx.evaluate_body(func, name, bases, kwds, live, self)
        if expected is not None:
            self.top = body
            return live
        problem = incompatible(live, body)
        if problem is not None:
            self.tx._bodies.pop(id(live), None)
            self.tx.needs_restart.append(
                f"cannot patch {self.tx.module.__name__}.{live.__qualname__}: {problem}; a restart is needed")
            return self.original(func, name, *bases, **kwds)
        return live


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
