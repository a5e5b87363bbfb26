"""attrs and dataclasses against the real attrs: field changes reach the live class and the instances made before
the edit; a slotted class, whose layout cannot change in place, asks for a restart and says why."""

from __future__ import annotations

import attr

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
    assert "Slotted" in report.needs_restart and "__slots__" in report.needs_restart
    assert old.x == 1 and isinstance(old, Slotted), "old instances keep their class"
    assert "Point" not in report.needs_restart


def test_a_dataclass_field_change_is_applied_in_place(modules):
    module = modules.load(source())
    Plain, old = module.Plain, module.Plain(1)
    report = modules.edit(module, source(plain="    y: str = 'b'\n"))
    assert report.ok, report.error
    assert module.Plain is Plain and Plain(1).y == "b" and Plain(1, "c") == Plain(x=1, y="c")
    assert old.x == 1 and isinstance(old, Plain)
