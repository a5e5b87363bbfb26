"""Pydantic adapter against the real Pydantic v2: model classes, instances, a nesting model, a TypeAdapter and a
FastAPI route are taken before each edit; afterwards they validate and serialise as a fresh import of the new
source does."""

from __future__ import annotations

import pydantic
import pytest
from fastapi.testclient import TestClient

MODELS = """\
from typing import List
from pydantic import BaseModel, TypeAdapter

class Item(BaseModel):
    name: str
{item_extra}
    def label(self):
        return "item " + self.name

class Order(BaseModel):
    item: Item
    count: int = 1

class Batch(BaseModel):
    orders: List[Order]

items = TypeAdapter(List[Item])
"""

WITH_PRICE = "    price: int = 0\n"


def dumps(module) -> dict:
    """What the models of ``module`` accept and produce for one input with a price."""
    out = {}
    for label, call in (
        ("item", lambda: module.Item.model_validate({"name": "a", "price": "3"}).model_dump()),
        ("order", lambda: module.Order.model_validate({"item": {"name": "a", "price": "4"}}).model_dump()),
        ("batch", lambda: module.Batch.model_validate({"orders": [{"item": {"name": "a", "price": 5}}]}).model_dump()),
        ("adapter", lambda: module.items.dump_python(module.items.validate_python([{"name": "a", "price": 6}]))),
        ("bad price", lambda: module.Order.model_validate({"item": {"name": "a", "price": "x"}}).model_dump()),
    ):
        try:
            out[label] = call()
        except pydantic.ValidationError as err:
            out[label] = f"invalid: {err.errors()[0]['loc']}"
    return out


def test_an_added_field_is_validated_and_dumped_by_the_model_its_dependents_and_type_adapters(modules):
    module = modules.load(MODELS.format(item_extra=""))
    Item, Order, Batch, items = module.Item, module.Order, module.Batch, module.items
    old_instance = Item(name="kept")
    report = modules.edit(module, MODELS.format(item_extra=WITH_PRICE))
    assert report.ok, report.error
    assert (module.Item, module.Order, module.Batch, module.items) == (Item, Order, Batch, items), \
        "the classes and the adapter are the same objects"
    expected = dumps(modules.load(MODELS.format(item_extra=WITH_PRICE)))
    assert dumps(module) == expected
    assert expected["order"] == {"item": {"name": "a", "price": 4}, "count": 1}
    assert expected["bad price"] == "invalid: ('item', 'price')"
    assert isinstance(Order(item={"name": "b"}).item, Item), "nested values are instances of the live class"
    assert old_instance.label() == "item kept"


def test_a_removed_field_is_gone_everywhere(modules):
    module = modules.load(MODELS.format(item_extra=WITH_PRICE))
    report = modules.edit(module, MODELS.format(item_extra=""))
    assert report.ok, report.error
    assert dumps(module) == dumps(modules.load(MODELS.format(item_extra="")))
    assert "price" not in module.Order(item={"name": "a", "price": 1}).model_dump()["item"]


def test_a_method_edit_is_patched_in_place_and_validation_is_unchanged(modules):
    module = modules.load(MODELS.format(item_extra=""))
    item = module.Item(name="x")
    label = item.label
    before = dumps(module)
    report = modules.edit(module, MODELS.format(item_extra="").replace('"item " + self.name', '"ITEM " + self.name'))
    assert report.ok, report.error
    assert label() == "ITEM x"
    assert dumps(module) == before
    assert module.Order(item={"name": "y"}).item.label() == "ITEM y"
    assert type(module.Order(item={"name": "y"}).item) is module.Item


API = """\
from fastapi import FastAPI
from pydantic import BaseModel

class Item(BaseModel):
    name: str
{item_extra}
app = FastAPI()

@app.post("/items")
def create(item: Item) -> Item:
    return item
"""


@pytest.mark.parametrize("body, status", [({"name": "a", "price": "x"}, 422), ({"name": "a", "price": 2}, 200)])
def test_fastapi_request_and_response_models_follow_a_field_change(modules, body, status):
    module = modules.load(API.format(item_extra=""))
    client = TestClient(module.app)
    assert client.post("/items", json={"name": "a", "price": "x"}).status_code == 200, "price unknown: ignored"
    report = modules.edit(module, API.format(item_extra=WITH_PRICE))
    assert report.ok, report.error
    response = client.post("/items", json=body)
    reference = TestClient(modules.load(API.format(item_extra=WITH_PRICE)).app).post("/items", json=body)
    assert (response.status_code, response.json()) == (reference.status_code, reference.json())
    assert response.status_code == status
