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
