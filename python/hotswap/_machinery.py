"""Class machinery redone on a live class after its members were patched in place.

A reload never creates a class twice, so what a metaclass or a standard-library class decorator derived from
the class body when the class was created must be derived again on the live class, to match what a fresh
import of the new source would give: dataclass fields and generated methods (and their removal when an option
is turned off), ``functools.total_ordering``, Enum and Flag members, NamedTuple fields, Protocol members, the
``__hash__`` that ``__eq__`` implies, ``__set_name__`` and ``__abstractmethods__`` (of subclasses too).

Each function here writes to the live class directly (through ``type.__setattr__``); the engine snapshots the
class's members first and puts them back if the reload fails. Trade-off: only the standard library's machinery
is known here; what a third-party metaclass derives is redone by an integration through ``hotswap._hooks``.
"""

from __future__ import annotations

import abc
import collections
import enum
import sys
import types
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

_MISSING: Any = object()

# Standard-library class decorators that only derive members from the class body: applying one again to the
# live class, after its previous output is removed, gives what it gave a freshly created class. They are
# re-applied whenever the class body changes; other class decorators only when their own text changes.
_DERIVING_DECORATORS = {
    ("dataclasses", "dataclass"),
    ("functools", "total_ordering"),
    ("typing", "runtime_checkable"),
    ("typing_extensions", "runtime_checkable"),
    ("typing", "final"),
    ("enum", "unique"),
    ("enum", "verify"),
}

_ORDERING = ("__lt__", "__le__", "__gt__", "__ge__")


# Deriving class decorators of other libraries, registered by their integrations (``register_deriving``):
# (whether a decorator object is one, what removes its previous output from a class before it is applied again).
_REGISTERED: List[Tuple[Callable[[Any], bool], Callable[[type, str, Mapping[str, Any]], None]]] = []


def register_deriving(is_one: Callable[[Any], bool], strip: Callable[[type, str, Mapping[str, Any]], None]) -> None:
    """Declares class decorators that only derive members from the class body (attrs' ``define``, ``attr.s``):
    when a class body changes, such a decorator is applied again to the live class, inside the reload's
    transaction, after ``strip(cls, path, body)`` removed what it generated before. ``is_one(decorator)`` tells
    a decorator object (or what a decorator factory returned) of that library."""
    _REGISTERED.append((is_one, strip))


def _registered(decorator: Any) -> Optional[Callable[[type, str, Mapping[str, Any]], None]]:
    for is_one, strip in _REGISTERED:
        try:
            if is_one(decorator):
                return strip
        except Exception:  # noqa: BLE001 - an integration's test must not break a reload
            continue
    return None


def is_deriving(decorator: Any) -> bool:
    """Whether ``decorator`` (a decorator object, or what ``dataclass(...)`` returned) is a deriving one."""
    if decorator is None:
        return False
    module = getattr(decorator, "__module__", None)
    name = getattr(decorator, "__qualname__", getattr(decorator, "__name__", ""))
    return (module, name.split(".", 1)[0]) in _DERIVING_DECORATORS or _registered(decorator) is not None


def _setter(cls: type, name: str) -> Any:
    # As the native apply step: through `type.__setattr__` (skipping a metaclass guard written in Python, such as
    # Enum's), unless the metatype's own setter is written in C (ctypes), which type's refuses to stand in for.
    own = getattr(type(cls), name)
    return own if type(own) is type(type.__setattr__) and own is not getattr(type, name) else getattr(type, name)


def set_attr(cls: type, name: str, value: Any) -> None:
    _setter(cls, "__setattr__")(cls, name, value)


def del_attr(cls: type, name: str) -> None:
    if name in cls.__dict__:
        _setter(cls, "__delattr__")(cls, name)


# --- dataclasses and total_ordering ---------------------------------------------------------------------------

def _generated(cls: type, key: str, value: Any, path: str, module: str) -> bool:
    """A function a decorator generated for ``cls`` (not defined in the class's own file)."""
    inner = getattr(value, "__wrapped__", value)
    if not isinstance(value, types.FunctionType) and not isinstance(inner, types.FunctionType):
        return False
    code = getattr(inner, "__code__", None)
    if code is None or code.co_filename == path:
        return False
    qualname = value.__qualname__
    # 3.9's dataclasses leave their generated functions named after the factory that made them.
    return (qualname == f"{cls.__qualname__}.{key}" or getattr(value, "__module__", None) == module
            or qualname == f"__create_fn__.<locals>.{key}")


def strip_dataclass(cls: type, path: str, body: Mapping[str, Any]) -> None:
    """Removes what ``@dataclass`` generated on ``cls``, and gives the fields their body values again."""
    if "__dataclass_fields__" not in cls.__dict__:
        return
    for key, value in list(cls.__dict__.items()):
        if key in ("__dataclass_fields__", "__dataclass_params__", "__match_args__"):
            del_attr(cls, key)
        elif key in body:
            continue
        elif key == "__hash__" or _generated(cls, key, value, path, "dataclasses"):
            del_attr(cls, key)
    # A field's default replaced the `field(...)` object in the class, a default_factory removed it: the
    # decorator needs the body's values back to see the fields as the body declares them.
    for name in body.get("__annotations__", {}):
        if name in body:
            set_attr(cls, name, body[name])


def strip_total_ordering(cls: type, body: Mapping[str, Any]) -> None:
    for key in _ORDERING:
        value = cls.__dict__.get(key)
        if key not in body and isinstance(value, types.FunctionType) and value.__module__ == "functools":
            del_attr(cls, key)


def strip_deriving(decorator: Any, cls: type, path: str, body: Mapping[str, Any]) -> None:
    """Removes the previous output of a deriving decorator before it is applied again (or dropped)."""
    name = getattr(decorator, "__qualname__", "").split(".", 1)[0]
    registered = _registered(decorator)
    if registered is not None:
        registered(cls, path, body)
    elif name == "dataclass":
        strip_dataclass(cls, path, body)
    elif name == "total_ordering":
        strip_total_ordering(cls, body)


def update_hash(cls: type, body: Mapping[str, Any]) -> None:
    """``type.__new__`` sets ``__hash__ = None`` when a body defines ``__eq__`` alone; undo it when the body no
    longer does, so the inherited ``__hash__`` applies again."""
    if "__eq__" in body and "__hash__" not in body:
        if cls.__dict__.get("__hash__", _MISSING) is not None:
            set_attr(cls, "__hash__", None)
    elif "__hash__" not in body and "__hash__" in cls.__dict__ and cls.__dict__["__hash__"] is None:
        del_attr(cls, "__hash__")


# --- Protocol, abstract methods, __set_name__ ------------------------------------------------------------------

def update_protocol(cls: type) -> None:
    if not getattr(cls, "_is_protocol", False) or "__protocol_attrs__" not in cls.__dict__:
        return
    import typing

    getter = getattr(typing, "_get_protocol_attrs", None)
    if getter is not None:  # 3.12+: cached at class creation
        set_attr(cls, "__protocol_attrs__", getter(cls))


def set_names(cls: type, members: Iterable[tuple]) -> None:
    """Calls ``__set_name__`` for new or changed descriptors, as ``type.__new__`` does at creation."""
    for key, value in members:
        hook = getattr(type(value), "__set_name__", None)
        if hook is not None:
            hook(value, cls, key)


def update_abstractmethods(cls: type) -> None:
    """Recomputes ``__abstractmethods__`` of ``cls`` and of every subclass (bases first)."""
    seen: Set[int] = set()
    queue: List[type] = [cls]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, abc.ABCMeta):
            _update_one(current)
        try:
            queue.extend(type.__subclasses__(current))
        except TypeError:
            pass


def _update_one(cls: type) -> None:
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
    cls.__abstractmethods__ = frozenset(abstracts)  # type: ignore[attr-defined]


# --- NamedTuple ------------------------------------------------------------------------------------------------

def is_namedtuple(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, tuple) and "_fields" in cls.__dict__


def namedtuple_fields(body: Mapping[str, Any]) -> List[str]:
    return list(body.get("__annotations__", {}))


def redo_namedtuple(cls: type, body: Mapping[str, Any]) -> None:
    """Gives a ``typing.NamedTuple`` class the fields of its new body (a plain ``collections.namedtuple`` of the
    same name supplies the generated members; it is a helper, never the user's class)."""
    fields = namedtuple_fields(body)
    defaults = [body[name] for name in fields if name in body]
    helper = collections.namedtuple(cls.__name__, fields, defaults=defaults, module=cls.__module__)  # type: ignore[misc]
    old_fields = cls.__dict__.get("_fields", ())
    for name in old_fields:
        if name not in fields:
            del_attr(cls, name)
    for key, value in helper.__dict__.items():
        if key in ("__module__", "__doc__", "__slots__", "__dict__", "__weakref__", "__qualname__"):
            continue
        if key in body and key not in fields:
            continue  # the body's own method wins, as NamedTupleMeta lets it
        set_attr(cls, key, value)
    annotations = dict(body.get("__annotations__", {}))
    set_attr(cls, "__annotations__", annotations)


# --- TypedDict ----------------------------------------------------------------------------------------------------

_TYPEDDICT_KEYS = ("__annotations__", "__required_keys__", "__optional_keys__", "__readonly_keys__",
                   "__mutable_keys__", "__total__")


def is_typeddict(cls: type) -> bool:
    meta = type(cls)
    return meta.__name__ == "_TypedDictMeta" and meta.__module__ in ("typing", "typing_extensions")


def redo_typeddict(cls: type, meta: Any, bases: tuple, body: Mapping[str, Any], kwds: Mapping[str, Any]) -> None:
    """Gives a ``TypedDict`` class the keys of its new body: the metaclass makes a helper class of the same body
    (a dict subclass no one sees), whose derived keys are copied to the live class."""
    helper = meta(cls.__name__, bases, dict(body), **kwds)
    for key in _TYPEDDICT_KEYS:
        if key in helper.__dict__:
            set_attr(cls, key, helper.__dict__[key])


# --- Enum and Flag ---------------------------------------------------------------------------------------------

def is_enum(cls: type) -> bool:
    return isinstance(cls, enum.EnumMeta)


def enum_member_names(body: Any) -> List[str]:
    names = getattr(body, "_member_names", None)
    return list(names) if names is not None else []


def redo_enum(cls: Any, body: Mapping[str, Any], names: List[str]) -> bool:
    """Makes the members of ``cls`` those of the new body. A member whose name and value are unchanged keeps
    its identity; so do composite Flag members made at run time (``Perm(6)``) while the value still means
    something. Returns whether the members changed."""
    old_map: Dict[str, Any] = dict(cls._member_map_)
    old_values: Dict[Any, Any] = dict(cls._value2member_map_)
    canonical = {id(member) for member in old_map.values()}
    pseudo = {value: member for value, member in old_values.items() if id(member) not in canonical}
    values = {name: body[name] for name in names}
    for name in old_map:
        del_attr(cls, name)
    if sys.version_info >= (3, 11):
        _members_311(cls, values)
    else:
        _members_39(cls, body, values)
    changed = list(old_map) != list(cls._member_map_)
    swap: Dict[int, Any] = {}
    for name, member in list(cls._member_map_.items()):
        old = old_map.get(name)
        if old is None or member is old:
            continue
        if member._name_ == name and old._value_ == member._value_ and type(old) is type(member):
            swap[id(member)] = old
        else:
            changed = True
    if swap:
        _swap_members(cls, swap)
    for value, member in pseudo.items():
        try:
            cls._value2member_map_.setdefault(value, member)
        except TypeError:
            pass
    return changed


def _reset_tables(cls: Any) -> None:
    set_attr(cls, "_member_names_", [])
    set_attr(cls, "_member_map_", {})
    set_attr(cls, "_value2member_map_", {})
    if "_unhashable_values_" in cls.__dict__:
        set_attr(cls, "_unhashable_values_", [])
    if "_unhashable_values_map_" in cls.__dict__:
        set_attr(cls, "_unhashable_values_map_", {})
    if "_flag_mask_" in cls.__dict__:
        for key in ("_flag_mask_", "_singles_mask_", "_all_bits_"):
            set_attr(cls, key, 0)
        set_attr(cls, "_inverted_", None)


def _members_311(cls: Any, values: Mapping[str, Any]) -> None:
    # 3.11+: EnumType.__new__ leaves each member as an `enum._proto_member` in the class, whose `__set_name__`
    # (called by type.__new__) makes the member and files it in every table and mask; the same call is made
    # here on the live class, with the tables emptied first.
    _reset_tables(cls)
    proto = enum._proto_member  # type: ignore[attr-defined]
    for name, value in values.items():
        if isinstance(value, enum.member if hasattr(enum, "member") else ()):  # enum.member(...) (3.11+)
            value = value.value
        holder = proto(value)
        set_attr(cls, name, holder)
        holder.__set_name__(cls, name)


def _members_39(cls: Any, body: Any, values: Mapping[str, Any]) -> None:
    # 3.9 and 3.10 make members inline in EnumMeta.__new__; this follows that code (same helpers).
    meta: Any = type(cls)  # EnumMeta's private helpers are not in typeshed
    member_type, first_enum = meta._get_mixins_(cls.__name__, cls.__bases__)
    new, _save_new, use_args = meta._find_new_(body, member_type, first_enum)
    _reset_tables(cls)
    dynamic = {k for c in cls.mro() for k, v in c.__dict__.items() if isinstance(v, types.DynamicClassAttribute)}
    for name, value in values.items():
        args = value if isinstance(value, tuple) else (value,)
        if member_type is tuple:
            args = (args,)
        if not use_args:
            member = new(cls)
            if not hasattr(member, "_value_"):
                member._value_ = value
        else:
            member = new(cls, *args)
            if not hasattr(member, "_value_"):
                member._value_ = value if member_type is object else member_type(*args)
        value = member._value_
        member._name_ = name
        member.__objclass__ = cls
        member.__init__(*args)
        for canonical in cls._member_map_.values():
            if canonical._value_ == value:
                member = canonical
                break
        else:
            cls._member_names_.append(name)
        if name not in dynamic:
            set_attr(cls, name, member)
        cls._member_map_[name] = member
        try:
            cls._value2member_map_[value] = member
        except TypeError:
            pass


def _swap_members(cls: Any, swap: Mapping[int, Any]) -> None:
    """Puts the old member objects back in place of the freshly made equal ones, everywhere they are filed."""
    def pick(member):
        return swap.get(id(member), member)

    set_attr(cls, "_member_map_", {name: pick(m) for name, m in cls._member_map_.items()})
    set_attr(cls, "_value2member_map_", {value: pick(m) for value, m in cls._value2member_map_.items()})
    for key, value in list(cls.__dict__.items()):
        if id(value) in swap:
            set_attr(cls, key, swap[id(value)])
        elif isinstance(value, property) and id(getattr(value, "member", None)) in swap:
            value.member = swap[id(value.member)]  # type: ignore[attr-defined]


