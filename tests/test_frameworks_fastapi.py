"""FastAPI adapter against the real FastAPI: the app object and its client are taken before each edit, and the
routes it serves afterwards are compared with what a fresh import of the new source serves."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hotswap import frameworks

APP = """\
from fastapi import Depends, FastAPI, APIRouter

app = FastAPI()
router = APIRouter()
calls = []

def token():
    return "t1"

@app.get("/hello")
def hello(name: str = "world"):
    calls.append(name)
    return {{"msg": f"hello {{name}}"}}

@router.get("/items/{{item_id}}")
def item(item_id: int, tok: str = Depends(token)):
    return {{"item": item_id, "tok": tok}}

{extra}

app.include_router(router, prefix="/v1")
"""


def fresh(modules, source: str) -> TestClient:
    """What the new source serves when imported from scratch (the reference behaviour)."""
    module = modules.load(source)
    return TestClient(module.app)


def served(client: TestClient, path: str) -> tuple:
    response = client.get(path)
    return response.status_code, response.json()


def test_adapter_activates_when_fastapi_is_imported():
    assert "fastapi" in frameworks.activated()


def test_a_route_path_change_moves_the_route_and_keeps_module_state(modules):
    module = modules.load(APP.format(extra=""))
    app, client = module.app, TestClient(module.app)
    hello = module.hello
    assert served(client, "/hello") == (200, {"msg": "hello world"})
    report = modules.edit(module, APP.format(extra="").replace('@app.get("/hello")', '@app.get("/hi")'))
    assert report.ok, report.error
    assert module.app is app
    assert served(client, "/hello")[0] == 404
    assert served(client, "/hi") == (200, {"msg": "hello world"})
    assert [getattr(r, "path", None) for r in app.routes].count("/hi") == 1
    assert module.calls == ["world", "world"], "module state survived the reload"
    assert hello("x") == {"msg": "hello x"}, "the old reference still works"
    reference = fresh(modules, APP.format(extra="").replace('@app.get("/hello")', '@app.get("/hi")'))
    assert sorted(map(str, reference.app.openapi()["paths"])) == sorted(map(str, app.openapi()["paths"]))


def test_added_and_removed_routes(modules):
    module = modules.load(APP.format(extra=""))
    client = TestClient(module.app)
    served(client, "/hello")
    extra = '@app.post("/echo")\ndef echo(body: dict):\n    return body\n'
    assert modules.edit(module, APP.format(extra=extra)).ok
    assert client.post("/echo", json={"a": 1}).json() == {"a": 1}
    without_hello = APP.format(extra=extra).replace(
        '@app.get("/hello")\ndef hello(name: str = "world"):\n    calls.append(name)\n'
        '    return {"msg": f"hello {name}"}\n', "")
    assert "def hello" not in without_hello
    report = modules.edit(module, without_hello)
    assert report.ok, report.error
    assert served(client, "/hello")[0] == 404
    assert client.post("/echo", json={"b": 2}).json() == {"b": 2}


def test_changed_parameters_and_response_validation_are_rebuilt(modules):
    module = modules.load(APP.format(extra=""))
    client = TestClient(module.app)
    assert served(client, "/hello?name=a") == (200, {"msg": "hello a"})
    new = APP.format(extra="").replace(
        'def hello(name: str = "world"):\n    calls.append(name)\n    return {"msg": f"hello {name}"}',
        'def hello(name: str = "world", times: int = 1):\n    calls.append(name)\n'
        '    return {"msg": " ".join([f"hello {name}"] * times)}')
    assert modules.edit(module, new).ok
    assert served(client, "/hello?name=a&times=2") == (200, {"msg": "hello a hello a"})
    # The new parameter is validated as the new signature says, as a fresh import would.
    assert client.get("/hello?times=x").status_code == 422
    assert fresh(modules, new).get("/hello?times=x").status_code == 422
    assert "times" in str(client.get("/openapi.json").json()["paths"]["/hello"])


def test_a_changed_dependency_and_an_included_router_path_follow(modules):
    module = modules.load(APP.format(extra=""))
    client = TestClient(module.app)
    assert served(client, "/v1/items/3") == (200, {"item": 3, "tok": "t1"})
    new = APP.format(extra="").replace('return "t1"', 'return "t2"').replace(
        '@router.get("/items/{item_id}")', '@router.get("/things/{item_id}")')
    report = modules.edit(module, new)
    assert report.ok, report.error
    assert served(client, "/v1/things/4") == (200, {"item": 4, "tok": "t2"})
    assert served(client, "/v1/items/4")[0] == 404
    assert served(fresh(modules, new), "/v1/things/4") == (200, {"item": 4, "tok": "t2"})


def test_a_failed_reload_leaves_the_routes_as_they_were(modules):
    module = modules.load(APP.format(extra=""))
    client = TestClient(module.app)
    routes = list(module.app.routes)
    report = modules.edit(module, APP.format(extra="raise RuntimeError('broken')").replace("/hello", "/hi"))
    assert not report.ok
    assert list(module.app.routes) == routes
    assert served(client, "/hello") == (200, {"msg": "hello world"})



def test_route_changes_go_live_at_the_commit_in_one_swap(modules):
    """While the reload runs, the app still serves its old routes (a new statement at the end of the module sees
    them); once it is done, the moved route answers at its new path only."""
    module = modules.load(APP.format(extra=""))
    client = TestClient(module.app)
    served(client, "/hello")
    routes = module.app.router.routes
    new = APP.format(extra="during = [getattr(r, 'path', None) for r in app.routes]\n").replace(
        '@app.get("/hello")\ndef hello(', '@app.get("/greet")\ndef greet(')
    report = modules.edit(module, new)
    assert report.ok, report.error
    assert "/hello" in module.during and "/greet" not in module.during
    assert module.app.router.routes is not routes, "a new list went live in one assignment"
    assert served(client, "/greet") == (200, {"msg": "hello world"})
    assert served(client, "/hello")[0] == 404


def test_a_route_fastapi_refuses_to_build_rolls_the_whole_reload_back(modules):
    """A new parameter type FastAPI cannot build a route with fails the reload at its commit: the function keeps
    its old signature and body, and the routes stay as they were."""
    module = modules.load(APP.format(extra="class Opaque:\n    pass\n"))
    client = TestClient(module.app)
    hello = module.hello
    routes = list(module.app.routes)
    new = APP.format(extra="class Opaque:\n    pass\n").replace(
        'def hello(name: str = "world"):\n    calls.append(name)\n    return {"msg": f"hello {name}"}',
        'def hello(name: str = "world", o: Opaque = None):\n    calls.append(name)\n    return {"msg": "changed"}')
    report = modules.edit(module, new)
    assert not report.ok
    assert "refused by a framework hook" in report.error
    assert hello() == {"msg": "hello world"}, "the code was rolled back with the routes"
    assert list(module.app.routes) == routes
    assert served(client, "/hello") == (200, {"msg": "hello world"})


def test_a_schema_computed_while_a_reload_ran_is_not_kept(modules):
    """A request that started computing the OpenAPI schema before a reload and stored it after the adapter
    dropped the cache (the old routes' schema, tagged with the generation it started in) is computed again."""
    module = modules.load(APP.format(extra=""))
    client = TestClient(module.app)
    stale = client.get("/openapi.json").json()
    started_in = module.app.__dict__["_hotswap_openapi_generation"]
    assert "/hello" in stale["paths"]
    assert modules.edit(module, APP.format(extra="").replace('@app.get("/hello")', '@app.get("/hi")')).ok
    # What the late request leaves behind: its schema, tagged with the generation it started in.
    module.app.openapi_schema = stale
    module.app.__dict__["_hotswap_openapi_generation"] = started_in
    paths = client.get("/openapi.json").json()["paths"]
    assert "/hi" in paths and "/hello" not in paths


def test_an_include_in_a_failed_reload_leaves_no_route_behind(modules):
    module = modules.load(APP.format(extra=""))
    client = TestClient(module.app)
    routes = list(module.app.routes)
    extra = ('extra = APIRouter()\n\n@extra.get("/more")\ndef more():\n    return 1\n\n'
             'app.include_router(extra, prefix="/x")\nraise RuntimeError("broken")\n')
    report = modules.edit(module, APP.format(extra=extra))
    assert not report.ok
    assert list(module.app.routes) == routes
    assert served(client, "/x/more")[0] == 404
    ok = modules.edit(module, APP.format(extra=extra.replace('raise RuntimeError("broken")\n', "")))
    assert ok.ok, ok.error
    assert served(client, "/x/more") == (200, 1)
    assert served(fresh(modules, APP.format(extra=extra.replace('raise RuntimeError("broken")\n', ""))),
                  "/x/more") == (200, 1)
