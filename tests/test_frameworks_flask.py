"""Flask and Jinja2 adapters against the real Flask: the app and its test client are taken before each edit and
have served a request (Flask's setup guard is armed); what they serve afterwards is what the new source says."""

from __future__ import annotations

import pytest

from hotswap import frameworks

APP = """\
import os
from flask import Flask, render_template

app = Flask(__name__, template_folder=os.path.join(os.path.dirname(__file__), "templates_{tag}"))
hits = []

@app.route("/hello")
def hello():
    hits.append(1)
    return "hello"

@app.route("/page")
def page():
    return render_template("page.html", n=len(hits))
{extra}
"""


@pytest.fixture
def flask_app(modules, tmp_path):
    def load(extra: str = "", tag: str = "a"):
        (tmp_path / f"templates_{tag}").mkdir(exist_ok=True)
        (tmp_path / f"templates_{tag}" / "page.html").write_text("page {{ n }}")
        module = modules.load(APP.format(extra=extra, tag=tag))
        client = module.app.test_client()
        assert client.get("/hello").data == b"hello"  # the first request: Flask's setup guard is armed
        return module, client

    return load


def test_adapters_activate_when_flask_is_imported():
    import flask

    assert flask.Flask.add_url_rule.__wrapped__ is not None
    assert {"flask", "jinja2"} <= set(frameworks.activated())


def test_a_route_added_after_the_first_request_is_served(modules, flask_app):
    module, client = flask_app()
    extra = '\n@app.route("/new")\ndef new():\n    return "new " + str(len(hits))\n'
    report = modules.edit(module, APP.format(extra=extra, tag="a"))
    assert report.ok, report.error
    assert client.get("/new").data == b"new 1", "module state (hits) survived"
    assert client.get("/hello").data == b"hello"


def test_a_changed_route_path_moves_the_endpoint(modules, flask_app):
    module, client = flask_app()
    view = module.app.view_functions["hello"]
    report = modules.edit(module, APP.format(extra="", tag="a").replace('@app.route("/hello")', '@app.route("/hi")')
                          .replace('return "hello"', 'return "hi"'))
    assert report.ok, report.error
    assert client.get("/hello").status_code == 404
    assert client.get("/hi").data == b"hi"
    assert view() == "hi", "the old view function runs the new code too"
    assert [r.rule for r in module.app.url_map.iter_rules() if r.endpoint == "hello"] == ["/hi"]


def test_a_removed_view_is_unrouted(modules, flask_app):
    module, client = flask_app(extra='\n@app.route("/gone")\ndef gone():\n    return "here"\n')
    assert client.get("/gone").data == b"here"
    assert modules.edit(module, APP.format(extra="", tag="a")).ok
    assert client.get("/gone").status_code == 404
    assert client.get("/hello").data == b"hello"


def test_a_failed_reload_leaves_the_url_map_as_it_was(modules, flask_app):
    module, client = flask_app()
    rules = sorted(r.rule for r in module.app.url_map.iter_rules())
    broken = APP.format(extra="\nraise RuntimeError('broken')\n", tag="a").replace(
        '@app.route("/hello")', '@app.route("/hi")')
    report = modules.edit(module, broken)
    assert not report.ok
    assert sorted(r.rule for r in module.app.url_map.iter_rules()) == rules
    assert client.get("/hello").data == b"hello"
    assert client.get("/hi").status_code == 404


def test_a_saved_template_is_rendered_anew(flask_app, tmp_path):
    module, client = flask_app(tag="t")
    assert client.get("/page").data == b"page 1"
    template = tmp_path / "templates_t" / "page.html"
    template.write_text("new page {{ n }}")
    assert client.get("/page").data == b"page 1", "Flask caches templates outside debug mode"
    assert frameworks.file_saved(str(template)) is True
    assert client.get("/page").data == b"new page 1"
    assert frameworks.file_saved(str(tmp_path / "elsewhere.html")) is False


def test_a_route_and_its_removal_go_live_together(modules, flask_app):
    """A renamed view at a new path: while the reload runs, the app still serves the old rules; once it is done,
    the new rule answers and the old one does not. No request sees both or neither."""
    module, client = flask_app()
    new = APP.format(extra="\nduring = sorted(r.rule for r in app.url_map.iter_rules())\n", tag="a").replace(
        '@app.route("/hello")\ndef hello():', '@app.route("/greet")\ndef greet():')
    report = modules.edit(module, new)
    assert report.ok, report.error
    assert "/greet" not in module.during and "/hello" in module.during, "nothing went live before the commit"
    assert client.get("/greet").data == b"hello"
    assert client.get("/hello").status_code == 404
    assert "hello" not in module.app.view_functions


def test_a_route_flask_refuses_rolls_the_whole_reload_back(modules, flask_app):
    """A second view for an existing endpoint: Flask refuses it, so the reload fails and neither the code nor the
    URL map changes (the body edit of hello in the same save is not applied either)."""
    module, client = flask_app()
    hello = module.hello
    rules = sorted((r.rule, r.endpoint) for r in module.app.url_map.iter_rules())
    extra = '\n@app.route("/other", endpoint="hello")\ndef other():\n    return "other"\n'
    new = APP.format(extra=extra, tag="a").replace('return "hello"', 'return "changed"').replace(
        '@app.route("/page")', '@app.route("/page2")')
    report = modules.edit(module, new)
    assert not report.ok
    assert "overwriting an existing endpoint" in report.error
    assert hello() == "hello" and client.get("/hello").data == b"hello"
    assert sorted((r.rule, r.endpoint) for r in module.app.url_map.iter_rules()) == rules
    assert client.get("/page2").status_code == 404 and client.get("/other").status_code == 404


BLUEPRINT_APP = """\
from flask import Blueprint, Flask

bp = Blueprint("bp", __name__)

@bp.route("/one")
def one():
    return "one"
{extra}
app = Flask(__name__)
app.register_blueprint(bp, url_prefix="/bp")
"""


def test_routes_added_to_a_registered_blueprint_are_served_and_removed_ones_stop(modules):
    module = modules.load(BLUEPRINT_APP.format(extra=""))
    app, client = module.app, module.app.test_client()
    assert client.get("/bp/one").data == b"one"  # the app has served a request; the blueprint is registered
    extra = '\n@bp.route("/two")\ndef two():\n    return "two"\n'
    report = modules.edit(module, BLUEPRINT_APP.format(extra=extra))
    assert report.ok, report.error
    assert module.app is app
    assert client.get("/bp/two").data == b"two"
    assert client.get("/bp/one").data == b"one"
    without_one = BLUEPRINT_APP.format(extra=extra).replace('@bp.route("/one")\ndef one():\n    return "one"\n', "")
    report = modules.edit(module, without_one)
    assert report.ok, report.error
    assert client.get("/bp/one").status_code == 404
    assert client.get("/bp/two").data == b"two"
    assert "bp.one" not in app.view_functions
    moved = without_one.replace('@bp.route("/two")', '@bp.route("/deux")')
    assert modules.edit(module, moved).ok
    assert client.get("/bp/deux").data == b"two"
    assert client.get("/bp/two").status_code == 404
    reference = modules.load(moved).app.test_client()
    for path in ("/bp/one", "/bp/two", "/bp/deux"):
        assert client.get(path).status_code == reference.get(path).status_code, path
