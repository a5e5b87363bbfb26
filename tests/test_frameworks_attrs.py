"""attrs and dataclasses against the real attrs: field changes reach the live class and the instances made before
the edit; a slotted class, whose layout cannot change in place, asks for a restart and says why."""

from __future__ import annotations

import attr
import attrs

MODELS = """\
import attr, dataclasses

@attr.s(auto_attribs=True)
class Point:
    x: int
{point_extra}
    def norm(self):
        return abs(self.x)

@attr.define
class Slotted:
    x: int
{slotted_extra}

@dataclasses.dataclass
class Plain:
    x: int
{plain_extra}
"""


def source(point: str = "", slotted: str = "", plain: str = "") -> str:
    return MODELS.format(point_extra=point, slotted_extra=slotted, plain_extra=plain)


def test_an_attrs_field_added_reaches_the_live_class_and_old_instances_keep_working(modules):
    module = modules.load(source())
    Point = module.Point
    old = Point(-3)
    norm = old.norm
    report = modules.edit(module, source(point="    y: int = 5\n"))
    assert report.ok, report.error
    assert module.Point is Point
    assert [a.name for a in attr.fields(Point)] == ["x", "y"]
    assert Point(1) == Point(1, 5) and repr(Point(1)) == "Point(x=1, y=5)"
    assert isinstance(old, module.Point) and norm() == 3
    fresh = modules.load(source(point="    y: int = 5\n"))
    assert [a.name for a in attr.fields(fresh.Point)] == [a.name for a in attr.fields(Point)]
    assert report.needs_restart is None


def test_a_slotted_attrs_class_asks_for_a_restart_naming_it(modules):
    module = modules.load(source())
    Slotted, old = module.Slotted, module.Slotted(1)
    report = modules.edit(module, source(slotted="    y: int = 2\n"))
    assert report.ok, report.error
    assert "Slotted" in report.needs_restart and "__slots__ were made by a class decorator (@attr.define)" in \
        report.needs_restart
    assert old.x == 1 and isinstance(old, Slotted), "old instances keep their class"
    assert "Point" not in report.needs_restart


def test_a_dataclass_field_change_is_applied_in_place(modules):
    module = modules.load(source())
    Plain, old = module.Plain, module.Plain(1)
    report = modules.edit(module, source(plain="    y: str = 'b'\n"))
    assert report.ok, report.error
    assert module.Plain is Plain and Plain(1).y == "b" and Plain(1, "c") == Plain(x=1, y="c")
    assert old.x == 1 and isinstance(old, Plain)


DEFINED = """\
import attrs

REGISTRY = []

def register(cls):
    REGISTRY.append(cls)
    return cls

@register
@attrs.define(slots=False)
class Item:
    name: str
{extra}
    def label(self):
        return self.name
"""


def test_attrs_define_regenerates_its_methods_from_the_new_body_on_the_live_class(modules):
    # attrs.define leaves methods the class defines itself alone: the ones it generated before must go first.
    module = modules.load(DEFINED.format(extra=""))
    Item = module.Item
    old = Item("a")
    label = old.label
    new = DEFINED.format(extra="    price: int = 0\n").replace("return self.name", "return f'{self.name}:{self.price}'")
    report = modules.edit(module, new)
    assert report.ok, report.error
    fresh = modules.load(new)
    assert module.Item is Item and isinstance(old, Item)
    assert [a.name for a in attrs.fields(Item)] == [a.name for a in attrs.fields(fresh.Item)] == ["name", "price"]
    assert Item("b", 2) == Item("b", 2) != Item("b", 3)
    assert repr(Item("b", 2)) == repr(fresh.Item("b", 2)).replace(fresh.__name__, module.__name__)
    assert Item("b", 2).label() == "b:2" == fresh.Item("b", 2).label()
    old.price = 7
    assert label() == "a:7"
    assert module.REGISTRY == [Item], "the registering decorator, unchanged, is not called again"


def test_an_attrs_decorator_that_refuses_the_new_body_fails_the_reload_and_leaves_the_class(modules):
    module = modules.load(DEFINED.format(extra="    price: int = 0\n"))
    Item = module.Item
    before = dict(Item.__dict__)
    # A mandatory field after one with a default: attrs raises while it derives the class.
    report = modules.edit(module, DEFINED.format(extra="    price: int = 0\n    count: int\n"))
    assert not report.ok and "count" in report.error_message
    assert dict(Item.__dict__) == before and Item("x", 1) == Item("x", 1) and Item("x").price == 0


OWN_DECORATORS = """\
import attr

def _options():
    return {"order": False}

def record(cls):
    return attr.s(auto_attribs=True, **_options())(cls)

def slotted(cls):
    return attr.s(auto_attribs=True, slots=True, **_options())(cls)

@record
class Point:
    x: int

@slotted
class Fixed:
    x: int
"""


def test_classes_made_by_the_modules_own_attrs_decorator_follow_its_code(modules):
    module = modules.load(OWN_DECORATORS)
    Point, Fixed = module.Point, module.Fixed
    old_point, old_fixed = Point(1), Fixed(1)
    new = OWN_DECORATORS.replace('"order": False', '"order": True')
    report = modules.edit(module, new)
    assert report.ok, report.error
    fresh = modules.load(new)
    # The unchanged `@record` class is decorated again, in place: attrs' ordering methods are generated on it.
    assert module.Point is Point and type(old_point) is Point
    assert old_point < Point(2) and hasattr(fresh.Point, "__lt__") and fresh.Point(1) < fresh.Point(2)
    assert [a.name for a in attr.fields(Point)] == ["x"]
    # attrs makes a slotted class anew each time it runs: the report says so, old instances keep their class.
    assert f"cannot patch {module.__name__}.Fixed: the code its class decorator runs changed" in report.needs_restart
    assert "@slotted" in report.needs_restart and "Point" not in report.needs_restart
    assert type(old_fixed) is Fixed and module.Fixed is not Fixed and module.Fixed(1) < module.Fixed(2)
