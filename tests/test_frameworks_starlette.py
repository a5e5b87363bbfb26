"""Starlette adapter against the real Starlette: an app built from a route list (no decorators) is taken, with a
client, before each edit of the list; afterwards the same app serves what a fresh import of the new source
serves, and its in-memory state survives."""

from __future__ import annotations

from starlette.testclient import TestClient

from hotswap import frameworks

APP = """\
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

hits = []

def hello(request):
    hits.append(1)
    return PlainTextResponse(f"hello {{len(hits)}}")

def item(request):
    return PlainTextResponse("item " + request.path_params["n"])
{extra}
routes = [
    Route("/hello", hello),
    Mount("/api", routes=[Route("/items/{{n}}", item)]),
]

app = Starlette(routes=routes)
"""


def fresh(modules, source: str) -> TestClient:
    return TestClient(modules.load(source).app)


def status(client: TestClient, path: str) -> tuple:
    response = client.get(path)
    return response.status_code, response.text


def test_adapter_activates_when_starlette_is_imported():
    assert "starlette" in frameworks.activated()


def test_an_edited_route_list_updates_the_live_app(modules):
    module = modules.load(APP.format(extra=""))
    app, client = module.app, TestClient(module.app)
    assert status(client, "/hello") == (200, "hello 1")
    extra = '\ndef bye(request):\n    return PlainTextResponse("bye " + str(len(hits)))\n'
    new = APP.format(extra=extra).replace('Route("/hello", hello),', 'Route("/hi", hello),\n    Route("/bye", bye),') \
        .replace('Route("/items/{n}", item)', 'Route("/things/{n}", item)')
    report = modules.edit(module, new)
    assert report.ok, report.error
    assert module.app is app, "the module keeps the app the server holds"
    assert status(client, "/hi") == (200, "hello 2"), "state survived"
    assert status(client, "/bye") == (200, "bye 2")
    assert status(client, "/hello")[0] == 404
    assert status(client, "/api/things/3") == (200, "item 3")
    assert status(client, "/api/items/3")[0] == 404
    reference = fresh(modules, new)
    for path in ("/hi", "/bye", "/hello", "/api/things/3", "/api/items/3"):
        assert status(client, path)[0] == status(reference, path)[0], path


def test_a_renamed_endpoint_and_a_removed_route(modules):
    module = modules.load(APP.format(extra=""))
    client = TestClient(module.app)
    assert status(client, "/hello") == (200, "hello 1")
    new = APP.format(extra="").replace("def hello(request):", "def greet(request):") \
        .replace('Route("/hello", hello)', 'Route("/hello", greet)') \
        .replace('    Mount("/api", routes=[Route("/items/{n}", item)]),\n', "")
    report = modules.edit(module, new)
    assert report.ok, report.error
    assert status(client, "/hello") == (200, "hello 2")
    assert module.app.routes[0].endpoint is module.greet
    assert status(client, "/api/items/1")[0] == 404


def test_a_failed_reload_leaves_the_app_serving_its_routes(modules):
    module = modules.load(APP.format(extra=""))
    client = TestClient(module.app)
    routes = module.app.router.routes
    broken = APP.format(extra="").replace('Route("/hello", hello)', 'Route("/hi", hello)')
    broken += "\nraise RuntimeError('x')\n"
    report = modules.edit(module, broken)
    assert not report.ok
    assert module.app.router.routes is routes
    assert status(client, "/hello") == (200, "hello 1")
    assert status(client, "/hi")[0] == 404
