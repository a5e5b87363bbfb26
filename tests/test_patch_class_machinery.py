"""A changed class is never created twice: registries keep the live class once, and what the class machinery
derives (dataclass methods, hash, Enum members, __set_name__, abstract methods) is redone on the live class to
match a fresh import of the new source."""

from __future__ import annotations

import dataclasses
import sys
import textwrap

import pytest

from conftest import ABSTRACT_SOURCE, DATACLASS_SOURCE
from hotswap import _hooks

REGISTRIES = """
    REGISTRY = []
    SUBCLASSES = []
    DECORATED = []

    class Meta(type):
        def __new__(mcls, name, bases, ns):
            cls = super().__new__(mcls, name, bases, ns)
            REGISTRY.append(cls)
            return cls

    class Base:
        def __init_subclass__(cls, **kwargs):
            super().__init_subclass__(**kwargs)
            SUBCLASSES.append(cls)

    def register(cls):
        DECORATED.append(cls)
        return cls

    class Model(metaclass=Meta):
        def value(self):
            return 1

    class Child(Base):
        def value(self):
            return 1

    @register
    class Plugin:
        def value(self):
            return 1
"""


def fresh(modules, source: str):
    """A fresh import of ``source`` as a module of its own: what a reload must match."""
    return modules.load(source)


def test_registries_hold_the_live_class_once_after_a_reload(modules):
    m = modules.load(REGISTRIES)
    Model, Child, Plugin = m.Model, m.Child, m.Plugin
    model, child, plugin = Model(), Child(), Plugin()
    report = modules.edit(m, REGISTRIES.replace("return 1", "return 2"))
    assert report.ok, report.error
    assert m.REGISTRY == [Model] and m.SUBCLASSES == [Child] and m.DECORATED == [Plugin]
    assert m.Model is Model and m.Child is Child and m.Plugin is Plugin
    assert model.value() == 2 and child.value() == 2 and plugin.value() == 2


def test_registries_hold_the_live_class_once_after_a_failed_reload(modules):
    m = modules.load(REGISTRIES)
    Model, Child = m.Model, m.Child
    model = Model()
    broken = REGISTRIES.replace("return 1", "return 2").replace(
        "class Child(Base):\n", "class Child(Base):\n        oops = 1 / 0\n")
    report = modules.edit(m, broken)
    assert not report.ok and "ZeroDivisionError" in report.error
    assert m.REGISTRY == [Model] and m.SUBCLASSES == [Child] and m.DECORATED == [m.Plugin]
    assert model.value() == 1 and not hasattr(Child, "oops")


def test_a_changed_class_decorator_is_applied_to_the_live_class_an_unchanged_one_is_not(modules):
    src = """
        CALLS = []

        def tag(label):
            def apply(cls):
                CALLS.append((label, cls))
                cls.label = label
                return cls
            return apply

        @tag("a")
        class C:
            def value(self):
                return 1
    """
    m = modules.load(src)
    C = m.C
    report = modules.edit(m, src.replace("return 1", "return 2"))
    assert report.ok, report.error
    assert m.CALLS == [("a", C)] and C().value() == 2
    report = modules.edit(m, src.replace('@tag("a")', '@tag("b")').replace("return 1", "return 2"))
    assert report.ok, report.error
    assert m.CALLS == [("a", C), ("b", C)] and C.label == "b" and m.C is C


def test_set_name_runs_on_the_live_class_for_new_and_changed_descriptors(modules):
    src = """
        import functools

        class Named:
            def __init__(self, tag):
                self.tag = tag
            def __set_name__(self, owner, name):
                self.owner, self.name = owner, name

        class C:
            first = Named(1)

            @functools.cached_property
            def total(self):
                return 1
    """
    m = modules.load(src)
    C = m.C
    old_instance = C()
    assert old_instance.total == 1
    new = src.replace("first = Named(1)", "first = Named(2)\n            second = Named(3)").replace(
        "return 1", "return 2")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert (C.first.tag, C.first.owner, C.first.name) == (2, C, "first")
    assert (C.second.owner, C.second.name) == (C, "second")
    assert C().total == 2  # cached_property: new instances run the new body
    assert old_instance.total == 1  # the value cached before the edit stays, as for any cached value


@pytest.mark.parametrize("option, probe", [
    ("frozen=True", lambda cls: "__setattr__" in cls.__dict__),
    ("order=True", lambda cls: "__lt__" in cls.__dict__),
    ("eq=True", lambda cls: "__eq__" in cls.__dict__),
    ("unsafe_hash=True", lambda cls: "__hash__" in cls.__dict__ and cls.__dict__["__hash__"] is not None),
])
def test_dataclass_options_turned_off_remove_what_they_generated(modules, option, probe):
    src = DATACLASS_SOURCE.replace("dataclass\n", f"dataclass({option})\n")
    m = modules.load(src)
    P = m.P
    p = P()
    assert probe(P)
    off = option.replace("True", "False")
    new = src.replace(option, off)
    report = modules.edit(m, new)
    assert report.ok, report.error
    expected = fresh(modules, new).P
    assert probe(P) == probe(expected) and not probe(P)
    assert m.P is P and isinstance(p, P)
    assert (P.__hash__ is None) == (expected.__hash__ is None)
    if option == "frozen=True":
        p.x = 5  # no longer frozen: the live instance accepts it
        assert p.x == 5


def test_removing_eq_restores_the_inherited_hash(modules):
    src = """
        class C:
            def __init__(self, v):
                self.v = v
            def __eq__(self, other):
                return self.v == other.v
    """
    m = modules.load(src)
    C = m.C
    c = C(1)
    with pytest.raises(TypeError):
        hash(c)
    new = src.replace("            def __eq__(self, other):\n                return self.v == other.v\n", "")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert hash(c) == object.__hash__(c) and "__hash__" not in C.__dict__
    # And back: adding __eq__ again makes instances unhashable, as a fresh class would be.
    report = modules.edit(m, src)
    assert report.ok, report.error
    with pytest.raises(TypeError):
        hash(c)


def test_total_ordering_is_redone_from_the_new_root(modules):
    src = """
        import functools

        @functools.total_ordering
        class V:
            def __init__(self, v):
                self.v = v
            def __eq__(self, other):
                return self.v == other.v
            def __lt__(self, other):
                return self.v < other.v
    """
    m = modules.load(src)
    V = m.V
    a, b = V(1), V(2)
    assert a <= b
    new = src.replace("def __lt__(self, other):\n                return self.v < other.v",
                      "def __gt__(self, other):\n                return self.v < other.v")
    report = modules.edit(m, new)
    assert report.ok, report.error
    expected = fresh(modules, new).V
    assert (a > b) == (expected(1) > expected(2)) is True
    assert (a <= b) == (expected(1) <= expected(2))
    assert V.__lt__.__module__ == "functools"


def test_flag_composite_members_keep_their_identity(modules):
    src = """
        import enum

        class P(enum.Flag):
            R = 4
            W = 2
            X = 1
    """
    m = modules.load(src)
    P = m.P
    rw = P.R | P.W
    r = P.R
    assert P(6) is rw
    new = src.replace("X = 1", "X = 1\n            S = 8")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert P(6) is rw and P.R is r and P(6) == P.R | P.W and (P.R | P.W) is rw
    assert P.S.value == 8 and P(12) == P.R | P.S
    assert [p.name for p in P] == [p.name for p in fresh(modules, new).P]


def test_enum_member_value_change_and_removal(modules):
    src = """
        import enum

        class Color(enum.Enum):
            RED = 1
            GREEN = 2
            BLUE = 3
    """
    m = modules.load(src)
    Color = m.Color
    red = Color.RED
    new = src.replace("GREEN = 2", "GREEN = 20").replace("            BLUE = 3\n", "")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert Color.RED is red and Color.GREEN.value == 20 and Color(20) is Color.GREEN
    assert not hasattr(Color, "BLUE") and [c.name for c in Color] == ["RED", "GREEN"]
    with pytest.raises(ValueError):
        Color(3)


def test_a_subclass_that_loses_an_override_becomes_abstract(modules):
    src = ABSTRACT_SOURCE + "\n        class Leaf(Impl):\n            pass\n"
    m = modules.load(src)
    Impl, Leaf = m.Impl, m.Leaf
    Leaf()
    new = src.replace("""        class Impl(Base):
            def run(self):
                return 1
""", """        class Impl(Base):
            pass
""")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert Impl.__abstractmethods__ == frozenset({"run"}) == Leaf.__abstractmethods__
    with pytest.raises(TypeError):
        Leaf()


def test_functions_made_while_a_class_is_patched_have_the_live_globals(modules):
    src = """
        import functools
        MARK = "old"

        class C:
            pass
    """
    m = modules.load(src)
    C = m.C
    new = src.replace("            pass\n", textwrap.indent(textwrap.dedent("""
        key = lambda self: MARK

        class Inner:
            def mark(self):
                return MARK

        @functools.lru_cache(maxsize=None)
        def cached(self):
            return MARK

        def default(self, f=lambda: MARK):
            return f()
    """), " " * 12))
    report = modules.edit(m, new)
    assert report.ok, report.error
    for func in (C.key, C.Inner.mark, C.cached.__wrapped__, C.default, C.default.__defaults__[0]):
        assert func.__globals__ is m.__dict__
    m.MARK = "new"
    c = C()
    assert (c.key(), C.Inner().mark(), c.cached(), c.default()) == ("new",) * 4


def test_a_changed_def_with_a_default_lambda_has_the_live_globals(modules):
    src = """
        MARK = "old"

        def f(key=lambda: MARK):
            return key()
    """
    m = modules.load(src)
    f = m.f
    report = modules.edit(m, src.replace("return key()", "return key() + '!'"))
    assert report.ok, report.error
    assert f.__defaults__[0].__globals__ is m.__dict__
    m.MARK = "new"
    assert f() == "new!"


def test_hooks_see_the_live_class_before_and_after_and_can_refuse(modules):
    src = """
        class C:
            limit = 1
            def value(self):
                return 1
    """
    m = modules.load(src)
    C = m.C
    seen = []

    def before(change):
        seen.append(("before", change.cls, dict(change.old), dict(change.new), C.limit))

    def after(change):
        seen.append(("after", change.cls, C.limit))

    def module_hook(module, report):
        seen.append(("module", module, report.ok))

    for register, callback in ((_hooks.before_class_change, before), (_hooks.after_class_change, after),
                               (_hooks.after_module_reload, module_hook)):
        register(callback)
    try:
        report = modules.edit(m, src.replace("limit = 1", "limit = 2"))
        assert report.ok, report.error
        assert seen == [("before", C, {"limit": 1}, {"limit": 2}, 1), ("after", C, 2), ("module", m, True)]

        def refuse(change):
            raise RuntimeError("not now")

        _hooks.before_class_change(refuse)
        try:
            report = modules.edit(m, src.replace("limit = 1", "limit = 3"))
        finally:
            _hooks.remove_hook(refuse)
        assert not report.ok and "RuntimeError: not now" in report.error
        assert C.limit == 2
    finally:
        for callback in (before, after, module_hook):
            _hooks.remove_hook(callback)


def test_dataclass_with_default_factory_keeps_its_fields(modules):
    src = """
        import dataclasses

        @dataclasses.dataclass
        class Bag:
            items: list = dataclasses.field(default_factory=list)
            name: str = "bag"
    """
    m = modules.load(src)
    Bag = m.Bag
    report = modules.edit(m, src.replace('name: str = "bag"', 'name: str = "sack"'))
    assert report.ok, report.error
    assert Bag() == Bag([], "sack") and dataclasses.fields(Bag)[0].name == "items"


CTYPES = """
    import ctypes

    class S(ctypes.Structure):
        _fields_ = [("a", ctypes.c_int)]

        def f(self):
            return 1

    class U(ctypes.Union):
        _fields_ = [("i", ctypes.c_int), ("c", ctypes.c_char)]

        def g(self):
            return 1
"""


def test_ctypes_structures_and_unions_are_patched_through_their_metatype(modules):
    m = modules.load(CTYPES)
    S, U = m.S, m.U
    s, u = S(3), U(7)
    f = s.f
    new = CTYPES.replace("return 1", "return 2").replace(
        "            return 2\n\n    class U", "            return 2\n\n        def h(self):\n"
        "            return self.a\n\n    class U")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert m.S is S and m.U is U
    assert (f(), s.f(), s.h(), u.g(), u.i) == (2, 2, 3, 2, 7)


def test_ctypes_fields_changed_needs_a_restart(modules):
    m = modules.load(CTYPES)
    S = m.S
    s = S(3)
    report = modules.edit(m, CTYPES.replace('[("a", ctypes.c_int)]', '[("a", ctypes.c_int), ("b", ctypes.c_int)]'))
    assert report.ok, report.error
    assert report.needs_restart and "_fields_" in report.needs_restart
    assert m.S is not S and m.S(1, 2).b == 2 and s.a == 3 and s.f() == 1


def test_a_generic_class_of_3_12_syntax_is_patched_in_place(modules):
    if sys.version_info < (3, 12):
        pytest.skip("PEP 695 type parameters are 3.12+ syntax")
    src = "class Box[T]:\n    def get(self, item: T) -> T:\n        return item\n"
    m = modules.load(src)
    Box = m.Box
    box = Box()
    report = modules.edit(m, src.replace("return item", "return [item]"))
    assert report.ok, report.error
    assert m.Box is Box and box.get(1) == [1] and [p.__name__ for p in Box.__type_params__] == ["T"]


def test_typeddict_keys_follow_the_new_body(modules):
    src = """
        from typing import TypedDict

        class Base(TypedDict):
            name: str

        class Raw(Base, total=False):
            author: str
    """
    m = modules.load(src)
    Raw = m.Raw
    new = src.replace("            author: str\n", "            author: str\n            license: str\n")
    report = modules.edit(m, new)
    assert report.ok, report.error
    fresh = modules.load(new).Raw
    assert m.Raw is Raw
    for key in ("__annotations__", "__required_keys__", "__optional_keys__", "__total__"):
        assert getattr(Raw, key) == getattr(fresh, key), key
    assert Raw.__optional_keys__ == frozenset({"author", "license"}) and Raw.__required_keys__ == frozenset({"name"})
