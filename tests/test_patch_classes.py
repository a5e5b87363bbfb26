"""Classes keep their identity: members are patched on the live class, so instances and subclasses follow."""

from __future__ import annotations

import dataclasses

import pytest

from conftest import ABSTRACT_SOURCE, DATACLASS_SOURCE, warm

BASE = """
    class Shape:
        sides = 0
        registry = []

        def __init__(self, size):
            self.size = size

        def area(self):
            return self.size * self.size

        @property
        def label(self):
            return "shape"

        @staticmethod
        def kind():
            return "static"

        @classmethod
        def make(cls):
            return cls(1)

        class Meta:
            version = 1
            def describe(self):
                return "meta1"
"""


def test_instances_bound_methods_and_isinstance_survive(modules):
    m = modules.load(BASE)
    Shape = m.Shape
    s = Shape(3)
    area = s.area
    registry = Shape.registry
    warm(area)
    new = (BASE.replace("return self.size * self.size", "return self.size * 2")
           .replace('return "shape"', 'return "SHAPE"')
           .replace('return "static"', 'return "STATIC"')
           .replace('return "meta1"', 'return "meta2"'))
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert m.Shape is Shape and isinstance(s, m.Shape)
    assert area() == 6 and s.area() == 6 and warm(s.area) == 6
    assert s.label == "SHAPE" and Shape.kind() == "STATIC" and isinstance(Shape.make(), Shape)
    assert Shape.registry is registry
    assert Shape.Meta().describe() == "meta2"
    assert "Shape.area" in report.patched


def test_added_and_removed_members(modules):
    m = modules.load(BASE)
    Shape = m.Shape
    s = Shape(2)
    new = BASE.replace("        @staticmethod\n        def kind():\n            return \"static\"\n", "").replace(
        "    sides = 0\n", "    sides = 0\n\n        def perimeter(self):\n            return 4 * self.size\n"
        "\n        color = 'red'\n")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert s.perimeter() == 8 and Shape.color == "red"
    assert not hasattr(Shape, "kind")
    assert "Shape.kind" in report.removed and "Shape.perimeter" in report.added
    # Added methods see the module's globals (not a scratch copy): a later global change is visible.
    m.__dict__["Shape"].perimeter.__globals__["MARK"] = 1
    assert m.MARK == 1


def test_class_attribute_changes_and_state_survival(modules):
    src = """
        class C:
            limit = 10
            cache = {}
    """
    m = modules.load(src)
    C = m.C
    C.cache["k"] = 1
    C.runtime_value = 5  # set by the program, not by the class body
    report = modules.edit(m, src.replace("limit = 10", "limit = 20"))
    assert report.ok
    assert C.limit == 20 and C.cache == {"k": 1} and C.runtime_value == 5


def test_zero_argument_super_in_changed_and_new_methods(modules):
    src = """
        class Base:
            def greet(self):
                return "base"
        class Child(Base):
            def greet(self):
                return "child"
    """
    m = modules.load(src)
    child = m.Child()
    greet = child.greet
    new = src.replace('return "child"', 'return "child+" + super().greet()').replace(
        "class Child(Base):\n",
        "class Child(Base):\n            def other(self):\n                return super().greet()\n")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert greet() == "child+base" and child.other() == "base"


def test_subclass_sees_patched_base(modules):
    src = """
        class Base:
            def value(self):
                return 1
        class Sub(Base):
            pass
    """
    m = modules.load(src)
    sub = m.Sub()
    warm(sub.value)
    modules.edit(m, src.replace("return 1", "return 2"))
    assert sub.value() == 2 and warm(sub.value) == 2


def test_dataclass_fields_and_generated_methods_are_redone(modules):
    src = """
        import dataclasses

        @dataclasses.dataclass
        class Point:
            x: int
            y: int = 0

            def norm(self):
                return abs(self.x) + abs(self.y)
    """
    m = modules.load(src)
    Point = m.Point
    p = Point(1, 2)
    new = src.replace("y: int = 0", "y: int = 5\n            z: int = 7")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert m.Point is Point
    q = Point(1)
    assert (q.y, q.z) == (5, 7)
    assert [f.name for f in __import__("dataclasses").fields(Point)] == ["x", "y", "z"]
    assert repr(q) == "Point(x=1, y=5, z=7)"
    assert p.norm() == 3 and isinstance(p, Point)


def test_enum_members_keep_identity_and_new_ones_appear(modules):
    src = """
        import enum

        class Color(enum.Enum):
            RED = 1
            GREEN = 2

            def describe(self):
                return self.name.lower()
    """
    m = modules.load(src)
    Color = m.Color
    red = Color.RED
    new = src.replace("GREEN = 2", "GREEN = 2\n            BLUE = 3").replace("self.name.lower()", "self.name.title()")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert Color.RED is red and Color(1) is red
    assert Color.BLUE.value == 3 and isinstance(Color.BLUE, Color) and Color(3) is Color.BLUE
    assert [c.name for c in Color] == ["RED", "GREEN", "BLUE"]
    assert red.describe() == "Red"


def test_namedtuple_fields_are_redone(modules):
    src = """
        from typing import NamedTuple

        class Pair(NamedTuple):
            a: int
            b: int = 0
    """
    m = modules.load(src)
    Pair = m.Pair
    report = modules.edit(m, src.replace("b: int = 0", "b: int = 0\n            c: int = 9"))
    assert report.ok, report.error
    assert Pair._fields == ("a", "b", "c")
    assert Pair(1).c == 9 and m.Pair is Pair


def test_abstract_methods_are_recomputed(modules):
    src = ABSTRACT_SOURCE
    m = modules.load(src)
    Base = m.Base
    new = src.replace("            def run(self):\n                ...\n",
                      "            def run(self):\n                ...\n\n            @abc.abstractmethod\n"
                      "            def stop(self):\n                ...\n")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert Base.__abstractmethods__ == frozenset({"run", "stop"})


def test_lru_cache_method_is_cleared(modules):
    src = """
        import functools

        class C:
            @functools.lru_cache(maxsize=None)
            def value(self):
                return 1
    """
    m = modules.load(src)
    c = m.C()
    assert c.value() == 1
    modules.edit(m, src.replace("return 1", "return 2"))
    assert c.value() == 2


def test_changed_slots_needs_restart_and_old_instances_work(modules):
    src = """
        class P:
            __slots__ = ("a",)
            def __init__(self):
                self.a = 1
            def get(self):
                return self.a
    """
    m = modules.load(src)
    OldP = m.P
    old = OldP()
    new = src.replace('("a",)', '("a", "b")').replace("self.a = 1", "self.a = 1\n                self.b = 2")
    report = modules.edit(m, new)
    assert report.ok
    assert report.needs_restart and "__slots__ changed ('a',) -> ('a', 'b')" in report.needs_restart
    assert m.P is not OldP and m.P().b == 2
    assert old.get() == 1 and isinstance(old, OldP)


def test_changed_bases_needs_restart(modules):
    src = """
        class A:
            pass
        class B:
            pass
        class C(A):
            pass
    """
    m = modules.load(src)
    report = modules.edit(m, src.replace("class C(A)", "class C(B)"))
    assert report.ok and "bases changed" in (report.needs_restart or "")
    assert m.C.__bases__ == (m.B,)


def test_runtime_checkable_protocol_members_follow(modules):
    src = """
        from typing import Protocol, runtime_checkable

        @runtime_checkable
        class Closer(Protocol):
            def close(self): ...

        class File:
            def close(self):
                pass
    """
    m = modules.load(src)
    Closer = m.Closer
    assert isinstance(m.File(), Closer)
    new = src.replace("def close(self): ...", "def close(self): ...\n            def flush(self): ...")
    report = modules.edit(m, new)
    assert report.ok, report.error
    assert not isinstance(m.File(), Closer)


def test_class_attribute_reading_a_rebound_name_is_reevaluated(modules):
    src = """
        LIMIT = 10
        class C:
            limit = LIMIT
            other = []
    """
    m = modules.load(src)
    C = m.C
    other = C.other
    report = modules.edit(m, src.replace("LIMIT = 10", "LIMIT = 20"))
    assert report.ok, report.error
    assert C.limit == 20 and C.other is other and m.C is C


def test_class_decorator_change_is_redone(modules):
    src = DATACLASS_SOURCE
    m = modules.load(src)
    P = m.P
    report = modules.edit(m, src.replace("@dataclasses.dataclass", "@dataclasses.dataclass(frozen=True)"))
    assert report.ok, report.error
    p = P()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2


DECORATED_SOURCE = """
    REGISTRY = {}
    MADE = []

    def _label(cls):
        return "v1:" + cls.__name__

    def tag(cls):
        REGISTRY[cls.__name__] = cls
        cls.label = _label(cls)
        return cls

    @tag
    class Item:
        count = 0

        def __init__(self, n):
            self.n = n

        def double(self):
            return 2 * self.n

    def make_app():
        MADE.append(1)
        return {"version": 1}

    app = make_app()
"""


def test_an_unchanged_class_is_decorated_again_when_the_code_its_decorator_runs_changes(modules):
    m = modules.load(DECORATED_SOURCE)
    Item, app = m.Item, m.app
    item = Item(3)
    double = item.double
    Item.count = 7  # class-level state of the unchanged class body
    warm(double)
    # Only a helper the decorator calls changed (and a factory whose product is bound at the top level).
    new = DECORATED_SOURCE.replace('"v1:"', '"v2:"').replace('{"version": 1}', '{"version": 2}')
    report = modules.edit(m, new)
    assert report.ok, report.error
    fresh = modules.load(new)
    assert m.Item is Item and type(item) is Item and double() == 6 and warm(double) == 6
    assert Item.label == "v2:Item" == fresh.Item.label
    assert Item.count == 7
    # The decorator ran on the live class: the registry holds it once; no second class was made.
    assert m.REGISTRY == {"Item": Item}
    # `app = make_app()` is not a class of the module being finished: it did not run again.
    assert m.app is app and app == {"version": 1} and m.MADE == [1]
    assert any("Item: unchanged, its class decorators ran again" in note and "_label" in note
               for note in report.notes), report.notes
    # A later edit that changes nothing the decorator runs does not call it again.
    Item.label = "kept"
    report = modules.edit(m, new.replace("return 2 * self.n", "return 3 * self.n"))
    assert report.ok, report.error
    assert double() == 9 and Item.label == "kept" and not any("class decorators ran again" in n for n in report.notes)


POST_PROCESSED_SOURCE = """
    def _fields(cls):
        return tuple(sorted(cls.__dict__.get("__annotations__", {})))

    def _finish(cls):
        cls.fields = _fields(cls)
        cls.version = 1
        return cls

    class Record:
        a: int
        b: int

        def total(self):
            return self.a + self.b

    Record = _finish(Record)
    ORIGINAL = Record
"""


def test_an_unchanged_statement_that_post_processes_a_class_runs_again_when_its_code_changes(modules):
    m = modules.load(POST_PROCESSED_SOURCE)
    Record = m.Record
    record = Record()
    record.a, record.b = 1, 2
    total = record.total
    new = POST_PROCESSED_SOURCE.replace("cls.version = 1", "cls.version = 2").replace(
        "tuple(sorted(", "tuple(reversed(sorted(").replace('{})))', '{}))))')
    report = modules.edit(m, new)
    assert report.ok, report.error
    fresh = modules.load(new)
    assert m.Record is Record is m.ORIGINAL and type(record) is Record and total() == 3
    assert Record.version == 2 == fresh.Record.version
    assert Record.fields == ("b", "a") == fresh.Record.fields
    assert any("ran again: it post-processes Record" in note for note in report.notes), report.notes


def test_a_class_decorated_from_another_module_follows_its_code_when_its_own_module_is_reloaded(modules):
    deco_src = """
        SEEN = {}

        def _label(cls):
            return "v1:" + cls.__name__

        def tag(cls):
            SEEN[cls.__name__] = cls
            cls.label = _label(cls)
            return cls
    """
    user_src = """
        from {deco} import tag

        @tag
        class Item:
            def f(self):
                return 1

        @tag
        class Other:
            pass

        def helper():
            return 1
    """
    deco = modules.load(deco_src)
    m = modules.load(user_src.format(deco=deco.__name__))
    Item, item = m.Item, m.Item()
    f = item.f
    report = modules.edit(deco, deco_src.replace('"v1:"', '"v2:"'))
    assert report.ok, report.error
    assert Item.label == "v1:Item", "the user's module is not reloaded: its class keeps what the decorator made"
    new_user = user_src.format(deco=deco.__name__).replace("return 1", "return 2")
    report = modules.edit(m, new_user)
    assert report.ok, report.error
    assert m.Item is Item and type(item) is Item and f() == 2
    assert deco.SEEN["Item"] is Item  # decorated again on the live class, which the registry holds
    assert Item.label == "v2:Item" and m.Other.label == "v2:Other" == modules.load(new_user).Other.label
    assert any(note.startswith("Item: its class decorators ran again") and f"{deco.__name__}._label" in note
               for note in report.notes), report.notes
    assert any(note.startswith("Other: unchanged, its class decorators ran again") for note in report.notes)
    # Decorated again with the current code: a later reload does not decorate it again.
    Item.label = "kept"
    report = modules.edit(m, new_user.replace("return 2", "return 3"))
    assert report.ok, report.error
    assert f() == 3 and Item.label == "kept"
