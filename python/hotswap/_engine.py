"""One reload as a transaction: run what the plan says, collect every write, apply them in one native step.

Statements that must run (new, changed plain statements, readers of rebound names) run in the module's own
namespace, after a snapshot of it is taken. Changed definitions are not run there: each is built again in a
scratch copy of the namespace, and the result (the *donor*) gives its code, defaults, closure and members to
the live object. Every such write becomes an op for ``hotswap._native.apply``, which applies them all while
holding the GIL and undoes them all if one fails. Writes queued before a statement that must run are applied
just before it runs, so module-level code calls the new versions of the functions it uses (as a re-import
would); in the common case, where only definitions changed, that is a single native step at the end. If
anything raises, every applied batch is undone and the namespace is put back from the snapshot, so a failed
reload leaves the module as it was.
"""

from __future__ import annotations
import __future__

import abc
import functools
import linecache
import logging
import sys
import types
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from . import _native

logger = logging.getLogger("hotswap")

_MISSING: Any = object()
_HAS_TYPE_PARAMS = sys.version_info >= (3, 12)

# Class attributes never copied from a donor class to the live one: identity and layout belong to the live
# class, and `_abc_impl` holds its registered virtual subclasses.
_CLASS_KEEP = frozenset({"__dict__", "__weakref__", "__module__", "__qualname__", "__slots__", "_abc_impl"})
_ENUM_TABLES = frozenset({"_member_map_", "_member_names_", "_value2member_map_"})
_LAYOUT_DESCRIPTORS = (types.MemberDescriptorType, types.GetSetDescriptorType)


class ReloadFailed(Exception):
    """The user's code raised while the reload ran it; carries the formatted reason."""


class Transaction:
    def __init__(self, module: types.ModuleType, path: str, text: str, old_stmts, new_stmts, rebound: Set[str]):
        self.module = module
        self.namespace: Dict[str, Any] = module.__dict__
        self.path = path
        self.text = text
        self.old_stmts = old_stmts
        self.new_stmts = new_stmts
        self.rebound = rebound
        self.is_main = module.__name__ == "__main__"
        self.flags = _future_flags(new_stmts)
        self.ops: List[tuple] = []
        self.after: List[Callable[[], object]] = []
        self.patched: List[str] = []
        self.added: List[str] = []
        self.removed: List[str] = []
        self.needs_restart: List[str] = []
        self.executed = 0
        self.snapshot: Optional[Dict[str, Any]] = None
        self._scratch: Optional[Dict[str, Any]] = None
        self._scratches: Dict[int, Dict[str, Any]] = {}  # every scratch namespace made, by id, kept alive
        self._nested: List[Tuple[types.CodeType, types.CodeType]] = []
        self._targets: Set[int] = set()
        self._undo: List[list] = []  # inverse ops of the batches already applied, oldest first

    # --- running code ---------------------------------------------------------------------------------------

    def _compile(self, source: str, lineno: int) -> types.CodeType:
        # Leading newlines put every line where it is in the file: tracebacks and inspect stay right.
        return compile("\n" * (lineno - 1) + source, self.path, "exec", self.flags, dont_inherit=True)

    def _exec(self, code: types.CodeType, namespace: Dict[str, Any]) -> None:
        try:
            exec(code, namespace)
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt at import are user errors too
            raise ReloadFailed(_format_user_error(exc, self.path)) from None

    def scratch(self) -> Dict[str, Any]:
        """A copy of the namespace to build donors in, so the module itself does not change yet."""
        if self._scratch is None:
            self._scratch = dict(self.namespace)
            self._scratches[id(self._scratch)] = self._scratch
        return self._scratch

    def run(self, stmt) -> None:
        """Runs a statement in the module's namespace (snapshotting the namespace first)."""
        self.flush()
        if self.snapshot is None:
            self.snapshot = dict(self.namespace)
        code = self._compile(stmt.text, stmt.lineno)
        before = set(self.namespace)
        self._exec(code, self.namespace)
        self.executed += 1
        self._scratch = None  # the namespace changed: the next donor needs a fresh copy
        for name in stmt.binds:
            if name not in before and name in self.namespace:
                self.added.append(name)

    def build(self, source: str, lineno: int, name: str, live: Any) -> Any:
        """Runs a definition in the scratch namespace and returns what it bound to ``name`` (the donor)."""
        scratch = self.scratch()
        self._exec(self._compile(source, lineno), scratch)
        donor = scratch.get(name, _MISSING)
        # Later donors must see the live object under this name (as defaults, bases, decorator arguments).
        if live is _MISSING:
            scratch.pop(name, None)
        else:
            scratch[name] = live
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
        self.run(stmt)
        if reason == "decorators" and old_obj is not _MISSING:
            # The decorators are applied anew (the name now holds their result); references to the old
            # function still get the new code.
            target = find_function(old_obj, stmt.name, self.path, old_stmt)
            donor = find_function(self.namespace.get(stmt.name), stmt.name, self.path, stmt)
            if target is not None and donor is not None and target is not donor:
                self.patch_function(target, donor, old_stmt, stmt)
            self.patched.append(stmt.name)

    def step_patch(self, stmt, reason: str, old_stmt) -> None:
        live = self.live(stmt.name)
        if stmt.kind == "def":
            target = find_function(live, stmt.name, self.path, old_stmt)
            if target is None:
                self.step_run(stmt, "new", None)
                return
            donor = self.build(stmt.def_text, stmt.def_lineno, stmt.name, live)
            if not isinstance(donor, types.FunctionType):
                raise ReloadFailed(f"{self.path}:{stmt.lineno}: {stmt.name} is no longer a function")
            self.patch_function(target, donor, old_stmt, stmt)
            if target is not live and hasattr(live, "cache_clear"):
                self.after.append(live.cache_clear)
            if reason in ("changed", "reads"):
                self.patched.append(stmt.name)
            return
        # A class.
        if not (isinstance(live, type) and live.__module__ == self.module.__name__ and live.__qualname__ == stmt.name):
            self.step_run(stmt, "new", None)
            return
        donor = self.build(stmt.text, stmt.lineno, stmt.name, live)
        if not isinstance(donor, type):
            raise ReloadFailed(f"{self.path}:{stmt.lineno}: {stmt.name} is no longer a class")
        problem = incompatible(live, donor)
        if problem is not None:
            # Not half-applied: the name gets a new class (built in the module's own namespace), old instances
            # keep their class, and the report says a restart is needed.
            self.needs_restart.append(
                f"cannot patch {self.module.__name__}.{stmt.name}: {problem}; a restart is needed")
            self.run(stmt)
            self.patched.append(stmt.name)
            return
        changed = self.patch_class(live, donor, old_stmt, stmt, stmt.name)
        if changed or reason in ("changed", "reads"):
            self.patched.append(stmt.name)

    def step_move(self, stmt, old_stmt) -> None:
        delta = stmt.lineno - old_stmt.lineno
        live = self.live(stmt.name)
        if stmt.kind == "def":
            target = find_function(live, stmt.name, self.path, old_stmt)
            functions = [target] if target is not None else []
        elif isinstance(live, type) and live.__module__ == self.module.__name__:
            functions = list(_class_functions(live, self.path))
            if hasattr(live, "__firstlineno__"):
                self.ops.append(("setattr", live, "__firstlineno__", live.__firstlineno__ + delta))
        else:
            functions = []
        for func in functions:
            if id(func) in self._targets:
                continue
            self._targets.add(id(func))
            self.ops.append(_func_op(func, code=_shift_lines(func.__code__, delta)))

    def remove(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.namespace:
                self.ops.append(("delitem", self.namespace, name))
                self.removed.append(name)

    # --- functions --------------------------------------------------------------------------------------------

    def patch_function(self, target: types.FunctionType, donor: types.FunctionType, old_stmt, new_stmt) -> None:
        """Queues the write of ``donor``'s code, closure, defaults, annotations and doc into ``target``."""
        if id(target) in self._targets:
            return
        self._targets.add(id(target))
        defaults, kwdefaults = self._merge_defaults(target, donor, old_stmt, new_stmt)
        self.ops.append(_func_op(
            target, code=donor.__code__, closure=donor.__closure__, defaults=defaults, kwdefaults=kwdefaults,
            annotations=donor.__annotations__, doc=donor.__doc__,
            type_params=getattr(donor, "__type_params__", None) if _HAS_TYPE_PARAMS else None,
        ))
        self._nested.extend(_nested_code_pairs(target.__code__, donor.__code__))

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
        for (old_code, new_code), functions in zip(pairs, found):
            for func in functions:
                if id(func) in self._targets:
                    continue
                cells = dict(zip(old_code.co_freevars, func.__closure__ or ()))
                missing = [name for name in new_code.co_freevars if name not in cells]
                if missing:
                    logger.warning(
                        "%s: left %s unpatched: its new code needs %s, which the closure it was made with "
                        "never captured (it gets the new code when it is made again)",
                        self.module.__name__, func.__qualname__, ", ".join(missing))
                    continue
                closure = tuple(cells[name] for name in new_code.co_freevars) or None
                self._targets.add(id(func))
                self.ops.append(_func_op(func, code=new_code, closure=closure))
                self._nested.extend(_nested_code_pairs(old_code, new_code))

    # --- classes ----------------------------------------------------------------------------------------------

    def patch_class(self, live: type, donor: type, old_stmt, new_stmt, qualname: str) -> bool:
        """Queues the writes that make ``live`` match ``donor``; returns whether any member changed."""
        changed = False
        cell = _class_cell(donor)
        if cell is not None:
            # Methods moved over from the donor run `super()` and `__class__` against the live class.
            self.ops.append(("cell", cell, live))
        old_members = list(old_stmt.members) if old_stmt is not None else []
        new_members = list(new_stmt.members) if new_stmt is not None else []
        unchanged, changed_names, member_stmts, old_member_stmts = _member_changes(
            old_members, new_members, self.rebound)
        old_bound = {name for member in old_members for name in member.binds}
        is_enum = _is_enum(live)
        donor_dict = donor.__dict__
        live_dict = live.__dict__
        for key, new in donor_dict.items():
            if key in _CLASS_KEEP or isinstance(new, _LAYOUT_DESCRIPTORS):
                continue
            if is_enum and (isinstance(new, donor) or key in _ENUM_TABLES):
                continue  # members and their lookup tables are handled below
            old = live_dict.get(key, _MISSING)
            name = f"{qualname}.{key}"
            if old is _MISSING:
                self.ops.append(("setattr", live, key, self.rehome(new)))
                self.added.append(name)
                changed = True
                continue
            pairs = _function_pairs(old, new, self.path)
            if pairs is not None:
                for target, fn_donor in pairs:
                    self.patch_function(target, fn_donor, old_member_stmts.get(key), member_stmts.get(key))
                if hasattr(old, "cache_clear") and key in changed_names:
                    self.after.append(old.cache_clear)
                if key in changed_names:
                    self.patched.append(name)
                    changed = True
                continue
            if (isinstance(new, type) and isinstance(old, type) and new.__qualname__ == f"{donor.__qualname__}.{key}"
                    and old.__qualname__ == f"{live.__qualname__}.{key}"):
                problem = incompatible(old, new)
                if problem is None:
                    nested_changed = self.patch_class(old, new, old_member_stmts.get(key), member_stmts.get(key), name)
                    if nested_changed or key in changed_names:
                        self.patched.append(name)
                        changed = True
                    continue
                self.needs_restart.append(f"cannot patch {self.module.__name__}.{name}: {problem}; a restart is needed")
            if key in unchanged:
                continue  # class-level state from an unchanged statement survives
            if _same(old, new):
                continue
            self.ops.append(("setattr", live, key, self.rehome(new)))
            if key in changed_names:
                self.patched.append(name)
            changed = True
        for key in live_dict:
            if key not in donor_dict and key in old_bound and key not in _CLASS_KEEP:
                self.ops.append(("delattr", live, key))
                self.removed.append(f"{qualname}.{key}")
                changed = True
        if is_enum:
            changed |= self._patch_enum_members(live, donor)
        if isinstance(live, abc.ABCMeta):
            self.after.append(functools.partial(_update_abstractmethods, live))
        return changed

    def _patch_enum_members(self, live: type, donor: type) -> bool:
        """Enum members: unchanged ones (same name and value) keep their identity, new or changed ones are the
        donor's members moved over to the live class; the lookup tables are rebuilt to match."""
        old_map = live._member_map_
        final = {}
        changed = False
        for name, member in donor._member_map_.items():
            old = old_map.get(name)
            if old is not None and old._value_ == member._value_:
                final[name] = old
            else:
                self.ops.append(("setattr", member, "__class__", live))
                final[name] = member
                changed = True
        for key, value in donor.__dict__.items():
            if isinstance(value, donor):
                self.ops.append(("setattr", live, key, final[value._name_]))
        for name in old_map:
            if name not in final:
                changed = True
                if name in live.__dict__:
                    self.ops.append(("delattr", live, name))
        value_map = {}
        for member in final.values():
            try:
                value_map.setdefault(member._value_, member)
            except TypeError:
                pass  # unhashable values live in `_unhashable_values_` (copied with the other attributes)
        self.ops.append(("setattr", live, "_member_map_", final))
        self.ops.append(("setattr", live, "_member_names_", [n for n in donor._member_names_]))
        self.ops.append(("setattr", live, "_value2member_map_", value_map))
        return changed

    def rehome(self, value: Any) -> Any:
        """A donor's new function moved into the live module must see the module's globals, not the scratch copy."""
        if isinstance(value, types.FunctionType) and id(value.__globals__) in self._scratches:
            twin = types.FunctionType(value.__code__, self.namespace, value.__name__, value.__defaults__,
                                      value.__closure__)
            twin.__kwdefaults__ = value.__kwdefaults__
            twin.__annotations__ = value.__annotations__
            twin.__qualname__ = value.__qualname__
            twin.__doc__ = value.__doc__
            twin.__module__ = value.__module__
            twin.__dict__.update(value.__dict__)
            if _HAS_TYPE_PARAMS:
                twin.__type_params__ = value.__type_params__
            return twin
        if type(value) in (staticmethod, classmethod):
            return type(value)(self.rehome(value.__func__))
        if type(value) is property:
            return property(*(self.rehome(f) if f is not None else None for f in (value.fget, value.fset, value.fdel)),
                            value.__doc__)
        return value

    # --- committing -------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Applies the queued writes now, keeping what undoes them."""
        if self.ops:
            self._undo.append(_native.apply(self.ops, undo=True))
            self.ops = []

    def rollback(self) -> None:
        """Undoes the batches already applied and puts the namespace back as it was before anything ran."""
        for undo in reversed(self._undo):
            _native.apply(undo)
        self._undo = []
        if self.snapshot is None:
            return
        ops = [("setitem", self.namespace, k, v) for k, v in self.snapshot.items()
               if self.namespace.get(k, _MISSING) is not v]
        ops += [("delitem", self.namespace, k) for k in list(self.namespace) if k not in self.snapshot]
        _native.apply(ops)

    def commit(self) -> None:
        _native.apply(self.ops)
        self.ops = []
        for callback in self.after:
            try:
                callback()
            except Exception:
                logger.exception("%s: post-reload step %r failed", self.module.__name__, callback)
        lines = self.text.splitlines(keepends=True)
        linecache.cache[self.path] = (len(self.text), None, lines, self.path)
        linecache.checkcache(self.path)  # drops the pinned entry if disk differs; keeps it when it matches


# --- helpers ------------------------------------------------------------------------------------------------------

def _func_op(func, *, code=None, closure=_MISSING, defaults=_MISSING, kwdefaults=_MISSING, annotations=_MISSING,
             doc=_MISSING, type_params=None) -> tuple:
    return (
        "func", func,
        func.__code__ if code is None else code,
        func.__closure__ if closure is _MISSING else closure,
        func.__defaults__ if defaults is _MISSING else defaults,
        func.__kwdefaults__ if kwdefaults is _MISSING else kwdefaults,
        func.__annotations__ if annotations is _MISSING else annotations,
        func.__doc__ if doc is _MISSING else doc,
        type_params,
    )


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


def _format_user_error(exc: BaseException, path: str) -> str:
    import traceback

    tb = exc.__traceback__
    # Drop hotswap's own frames: the first frame of interest is the user's file.
    while tb is not None and tb.tb_frame.f_code.co_filename != path:
        tb = tb.tb_next
    if tb is None:  # a SyntaxError names its file and line itself
        return "".join(traceback.format_exception_only(type(exc), exc))
    return "".join(traceback.format_exception(type(exc), exc, tb))


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
    ``obj`` holds no such function (several `def _` registered with singledispatch share one name), the heap
    is searched for it.
    """
    lines = None if stmt is None else {stmt.lineno, stmt.def_lineno}
    for item in _unwrap_candidates(obj):
        if isinstance(item, types.FunctionType):
            code = item.__code__
            if code.co_name == name and code.co_filename == path and (lines is None or code.co_firstlineno in lines):
                return item
    if lines is None:
        return None
    import gc

    for item in gc.get_objects():
        if type(item) is types.FunctionType:
            code = item.__code__
            if code.co_name == name and code.co_filename == path and code.co_firstlineno in lines:
                if "." not in item.__qualname__:
                    return item
    return None


def _function_pairs(old: Any, new: Any, path: str) -> Optional[List[Tuple[types.FunctionType, types.FunctionType]]]:
    """Pairs of (live function, donor function) to patch for a class attribute, or None if the two are not the
    same kind of thing (then the attribute is replaced)."""
    if type(old) is not type(new):
        return None
    if hasattr(old, "__wrapped__") and hasattr(new, "__wrapped__"):
        # A decorator's wrapper: its own code belongs to the decorator; patch what it wraps.
        return _function_pairs(old.__wrapped__, new.__wrapped__, path)
    if isinstance(old, types.FunctionType):
        if old.__code__.co_filename != path and old.__code__ is new.__code__:
            return []
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


def _class_cell(cls: type):
    """The `__class__` cell the compiler made for ``cls``'s body, if a method uses `super()` or `__class__`."""
    for value in cls.__dict__.values():
        for item in _unwrap_candidates(value):
            if isinstance(item, types.FunctionType) and "__class__" in item.__code__.co_freevars:
                cell = item.__closure__[item.__code__.co_freevars.index("__class__")]
                try:
                    if cell.cell_contents is cls:
                        return cell
                except ValueError:
                    continue
    return None


def incompatible(live: type, donor: type) -> Optional[str]:
    """Why ``donor``'s layout cannot be given to ``live`` in place, or None."""
    if type(live) is not type(donor):
        return f"metaclass changed {type(live).__name__} -> {type(donor).__name__}"
    old_slots = live.__dict__.get("__slots__", _MISSING)
    new_slots = donor.__dict__.get("__slots__", _MISSING)
    if _slots(old_slots) != _slots(new_slots):
        return f"__slots__ changed {_slots(old_slots)!r} -> {_slots(new_slots)!r}"
    if live.__bases__ != donor.__bases__:
        names = lambda bases: "(" + ", ".join(b.__qualname__ for b in bases) + ")"  # noqa: E731
        return f"bases changed {names(live.__bases__)} -> {names(donor.__bases__)}"
    for attr in ("__basicsize__", "__itemsize__", "__dictoffset__", "__weakrefoffset__"):
        if getattr(live, attr) != getattr(donor, attr):
            return f"instance layout changed ({attr})"
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


def _is_enum(cls: type) -> bool:
    import enum

    return isinstance(cls, enum.EnumMeta)


def _member_changes(old_members, new_members, rebound: Set[str]):
    """Class body statements: names bound only by unchanged ones, names bound by changed or new ones, and for
    each name the statement (new and old) that binds it."""
    def key(stmt):
        return (stmt.kind, stmt.name if stmt.kind != "other" else stmt.text)

    old_by_key: Dict[Any, List[Any]] = {}
    for stmt in old_members:
        old_by_key.setdefault(key(stmt), []).append(stmt)
    unchanged: Set[str] = set()
    changed: Set[str] = set()
    new_by_name: Dict[str, Any] = {}
    old_by_name: Dict[str, Any] = {}
    for stmt in new_members:
        candidates = old_by_key.get(key(stmt))
        old = candidates.pop(0) if candidates else None
        same = old is not None and old.text == stmt.text and not rebound.intersection(stmt.reads)
        for name in stmt.binds:
            (unchanged if same else changed).add(name)
            new_by_name[name] = stmt
            if old is not None:
                old_by_name[name] = old
    return unchanged - changed, changed, new_by_name, old_by_name


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
    consts = tuple(_shift_lines(c, delta) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_firstlineno=code.co_firstlineno + delta, co_consts=consts)


def _update_abstractmethods(cls: type) -> None:
    # isinstance/issubclass answers are cached per ABC (a Protocol whose members changed must be asked again);
    # the cache is cleared, the registered virtual subclasses are kept.
    cls._abc_caches_clear()  # type: ignore[attr-defined]
    if hasattr(abc, "update_abstractmethods"):  # 3.10+
        abc.update_abstractmethods(cls)
        return
    abstracts = {name for name, value in cls.__dict__.items() if getattr(value, "__isabstractmethod__", False)}
    for base in cls.__bases__:
        for name in getattr(base, "__abstractmethods__", ()):
            if getattr(getattr(cls, name, None), "__isabstractmethod__", False):
                abstracts.add(name)
    cls.__abstractmethods__ = frozenset(abstracts)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 60 else line[:57] + "..."
