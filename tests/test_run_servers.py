"""`hotswap run` in front of real servers (uvicorn, flask run, Django's runserver, gunicorn), driven over loopback
HTTP while their files are edited: the new code is served, in-memory state survives, their own reloaders are
bypassed with one line, and Ctrl-C ends them as it ends them without hotswap."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest
from proc_helpers import Run, edit, free_port, get, serves, wait_until, write


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("DJANGO_SETTINGS_MODULE", None)
    runs: list[Run] = []

    def start(*args: str) -> Run:
        run = Run(list(args), root, env)
        runs.append(run)
        return run

    yield root, start
    for run in runs:
        run.close()


def interrupt_and_wait(run: Run) -> int:
    """Ctrl-C as a terminal sends it to the foreground group: here, the supervisor forwards it."""
    run.popen.send_signal(signal.SIGINT)
    return run.popen.wait(30)


FASTAPI_APP = """\
from fastapi import FastAPI
app = FastAPI()
hits = []

@app.get("/hello")
def hello():
    hits.append(1)
    return {"msg": "hello", "hits": len(hits)}
"""


def test_uvicorn_serves_edits_in_place_and_exits_quietly_on_ctrl_c(server):
    root, start = server
    write(root / "app.py", FASTAPI_APP)
    port = free_port()
    run = start("-m", "uvicorn", "app:app", "--port", str(port), "--reload")
    serves(port, "/hello", '{"msg":"hello","hits":1}')
    run.wait_err("uvicorn's --reload bypassed")
    edit(root / "app.py", FASTAPI_APP.replace('"msg": "hello"', '"msg": "hi"').replace('"/hello"', '"/hi"'))
    serves(port, "/hi", '{"msg":"hi","hits":2}')
    assert get(port, "/hello")[0] == 404
    run.wait_err("hotswap: app: patched")
    assert interrupt_and_wait(run) == 0
    err = "\n".join(run.err)
    assert "Traceback" not in err and "CancelledError" not in err, err


FLASK_APP = """\
from flask import Flask, render_template
app = Flask(__name__)
hits = []

@app.route("/hello")
def hello():
    hits.append(1)
    return f"hello {len(hits)}"

@app.route("/page")
def page():
    return render_template("page.html", n=len(hits))
"""


def test_flask_run_debug_serves_new_routes_and_templates_without_restarting(server):
    root, start = server
    write(root / "app.py", FLASK_APP)
    write(root / "templates" / "page.html", "page {{ n }}")
    port = free_port()
    run = start("-m", "flask", "--app", "app", "run", "--debug", "--port", str(port))
    serves(port, "/hello", "hello 1")
    run.wait_err("werkzeug's reloader bypassed")
    edit(root / "app.py", FLASK_APP + '\n@app.route("/new")\ndef new():\n    return f"new {len(hits)}"\n')
    serves(port, "/new", "new 1")
    edit(root / "app.py", FLASK_APP.replace('@app.route("/hello")', '@app.route("/hi")'))
    serves(port, "/hi", "hello 2")
    serves(port, "/new", lambda body: True, status=404)  # the route is gone (any 404 page)
    assert get(port, "/hello")[0] == 404
    serves(port, "/page", "page 2")
    edit(root / "templates" / "page.html", "new page {{ n }}")
    serves(port, "/page", "new page 2")
    assert not any("restarting" in line for line in run.err), run.err
    interrupt_and_wait(run)


DJANGO_SETTINGS = """\
SECRET_KEY = "test"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "site_urls"
INSTALLED_APPS = []
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [__import__("os").path.join(
    __import__("os").path.dirname(__file__), "templates")],
    "OPTIONS": {"loaders": [("django.template.loaders.cached.Loader",
                             ["django.template.loaders.filesystem.Loader"])]}}]
DATABASES = {}
USE_TZ = True
"""

DJANGO_URLS = """\
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import path

hits = []

def hello(request):
    hits.append(1)
    return HttpResponse(f"hello {len(hits)}")

def page(request):
    return render(request, "page.html", {"n": len(hits)})

urlpatterns = [path("hello", hello), path("page", page)]
"""

MANAGE = """\
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""


def test_django_runserver_follows_views_urlconf_and_templates(server):
    root, start = server
    write(root / "manage.py", MANAGE)
    write(root / "site_settings.py", DJANGO_SETTINGS)
    write(root / "site_urls.py", DJANGO_URLS)
    write(root / "templates" / "page.html", "page {{ n }}")
    port = free_port()
    run = start("manage.py", "runserver", f"127.0.0.1:{port}")
    serves(port, "/hello", "hello 1")
    run.wait_err("Django's autoreloader bypassed")
    edit(root / "site_urls.py", DJANGO_URLS.replace('f"hello {len(hits)}"', 'f"hi {len(hits)}"'))
    # Every poll of the old view counts a hit: the new view sees the count the old one left (state kept).
    serves(port, "/hello", lambda body: body.startswith("hi ") and int(body.split()[1]) >= 2)
    hits = int(get(port, "/hello")[1].split()[1])
    edit(root / "site_urls.py", DJANGO_URLS.replace('path("hello", hello)', 'path("greet", hello)'))
    serves(port, "/greet", f"hello {hits + 1}")
    assert get(port, "/hello")[0] == 404
    serves(port, "/page", f"page {hits + 1}")
    edit(root / "templates" / "page.html", "new page {{ n }}")
    serves(port, "/page", f"new page {hits + 1}")
    assert not any("restarting" in line for line in run.err), run.err
    interrupt_and_wait(run)


WSGI_APP = """\
hits = []

def app(environ, start_response):
    hits.append(1)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"wsgi {len(hits)}".encode()]
"""


WORKERS_APP = """\
import os
hits = []

def app(environ, start_response):
    hits.append(1)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"v1 {os.getpid()} {len(hits)}".encode()]
"""


def test_gunicorn_workers_each_serve_the_edit_with_their_state(server):
    root, start = server
    write(root / "wsgi.py", WORKERS_APP)
    port = free_port()
    run = start("-m", "gunicorn", "wsgi:app", "-b", f"127.0.0.1:{port}", "-w", "2")
    seen: dict = {}

    def workers_at(version: str):
        def check():
            status, body = get(port, "/")
            if status == 200 and body.startswith(version + " "):
                _, pid, count = body.split()
                seen.setdefault(version, {})[pid] = int(count)
            return len(seen.get(version, {})) == 2
        return check

    wait_until(workers_at("v1"), 60, interval=0.02, what="both workers serving v1")
    edit(root / "wsgi.py", WORKERS_APP.replace('f"v1 ', 'f"v2 '))
    wait_until(workers_at("v2"), 60, interval=0.02, what="both workers serving v2")
    assert set(seen["v2"]) == set(seen["v1"]), "the same worker processes: patched, not restarted"
    assert all(seen["v2"][pid] > seen["v1"][pid] for pid in seen["v1"]), "each worker kept its request count"
    interrupt_and_wait(run)


def test_gunicorn_runs_under_hotswap_and_stops_on_ctrl_c(server):
    root, start = server
    write(root / "wsgi.py", WSGI_APP)
    port = free_port()
    run = start("-m", "gunicorn", "wsgi:app", "-b", f"127.0.0.1:{port}", "-w", "1")
    serves(port, "/", "wsgi 1")
    assert interrupt_and_wait(run) == 0
    if any("Traceback" in line for line in run.err):
        print("\n".join(run.err))  # whole, in the captured output: pytest cuts a long assertion message short
    assert not any("Traceback" in line for line in run.err)


WORKER_APP = """\
import os
from fastapi import FastAPI
app = FastAPI()

@app.get("/who")
def who():
    return {"msg": "v1", "pid": os.getpid()}
"""


def test_uvicorn_workers_started_with_spawn_each_keep_reloading(server):
    """uvicorn --workers starts its workers with multiprocessing's spawn (fresh interpreters): each patches the
    saved file itself, says so on one line naming its pid, and every answer afterwards is the new code."""
    root, start = server
    write(root / "app.py", WORKER_APP)
    port = free_port()
    run = start("-m", "uvicorn", "app:app", "--port", str(port), "--workers", "2")
    serves(port, "/who", lambda body: '"v1"' in body, timeout=60)
    # Both workers have imported the app before the edit (each answers once it started).
    wait_until(lambda: sum("Application startup complete" in line for line in list(run.err)) >= 2, 60,
               what="both workers started")
    edit(root / "app.py", WORKER_APP.replace('"v1"', '"v2"').replace('"/who"', '"/who2"'))

    def patched_workers() -> set:
        return {line.split("]")[0] for line in list(run.err)
                if line.startswith("hotswap: [") and "app: patched" in line}

    wait_until(lambda: len(patched_workers()) == 2, 30, what=f"both workers patched: {run.err}")
    answers = [get(port, "/who2") for _ in range(20)]
    assert all(status == 200 and '"v2"' in body for status, body in answers), answers
    assert all(get(port, "/who")[0] == 404 for _ in range(10))
    assert interrupt_and_wait(run) == 0


def test_a_spawned_uvicorn_worker_that_needs_a_restart_is_replaced_with_the_new_code(server):
    """A change that cannot be patched in place (a class's __slots__) ends each worker that sees it, with one line
    saying why; uvicorn starts fresh workers, which import the new code."""
    root, start = server
    source = WORKER_APP.replace("app = FastAPI()\n", 'app = FastAPI()\n\nclass Point:\n    __slots__ = ("x",)\n')
    write(root / "app.py", source)
    port = free_port()
    run = start("-m", "uvicorn", "app:app", "--port", str(port), "--workers", "2")
    wait_until(lambda: sum("Application startup complete" in line for line in list(run.err)) >= 2, 60,
               what="both workers started")
    before = {json.loads(get(port, "/who")[1])["pid"] for _ in range(10)}
    edit(root / "app.py", source.replace('("x",)', '("x", "y")').replace('"v1"', '"v2"'))
    serves(port, "/who", lambda body: '"v2"' in body, timeout=60)
    run.wait_err("ending this child for a restart")

    def served_by_new_workers() -> bool:
        answers = [get(port, "/who") for _ in range(10)]
        return all(status == 200 and json.loads(body)["msg"] == "v2" and json.loads(body)["pid"] not in before
                   for status, body in answers)

    wait_until(served_by_new_workers, 60, what=f"only new workers serve, with v2: {run.err}")
    assert sum("ending this child for a restart" in line for line in list(run.err)) == 2, run.err
    assert interrupt_and_wait(run) == 0


def test_ctrl_c_at_a_terminal_ends_uvicorn_as_quietly_as_without_hotswap(server):
    """Plain uvicorn is stopped once it is running (it has answered a request: startup has no await after its
    "running on" line, so its startup is over); under hotswap the Ctrl-C comes as early as the app's startup is
    complete, while uvicorn may still be starting (uvicorn 0.39, the last for 3.9, skips its shutdown and logs a
    lifespan CancelledError traceback for a Ctrl-C in that window, which hotswap run must not show)."""
    pexpect = pytest.importorskip("pexpect")
    root, _start = server
    write(root / "app.py", FASTAPI_APP)
    outputs = {}
    for label, args, ready in (("plain", ["-m", "uvicorn"], "Uvicorn running on"),
                               ("hotswap", ["-m", "hotswap", "run", "-m", "uvicorn"], "Application startup complete")):
        port = free_port()
        child = pexpect.spawn(sys.executable, [*args, "app:app", "--port", str(port)], cwd=str(root),
                              encoding="utf-8", timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        child.expect(ready)
        if label == "plain":
            serves(port, "/hello", lambda body: '"hello"' in body)
        child.sendintr()  # the terminal's Ctrl-C: SIGINT to the whole foreground process group
        child.expect(pexpect.EOF)
        child.close()
        outputs[label] = (child.exitstatus, child.before)
    for label, (status, output) in outputs.items():
        assert status == 0, (label, output)
        assert "Traceback" not in output and "CancelledError" not in output, (label, output)
        assert "Finished server process" in output, (label, output)


def test_a_stop_requested_while_uvicorn_starts_goes_through_its_shutdown():
    """The window behind the Ctrl-C test, made deterministic: the stop request (what uvicorn's SIGINT handler
    sets) arrives during startup, after the app's lifespan started. Under hotswap run uvicorn still shuts down:
    the lifespan's shutdown runs and no task is left to be cancelled."""
    import asyncio

    import uvicorn
    from uvicorn import server as uvicorn_server

    from hotswap.frameworks import servers

    servers._uvicorn_stop_after_startup(uvicorn_server)
    events = []
    holder = {}

    async def app(scope, receive, send):
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                events.append("startup")
                holder["server"].should_exit = True  # as uvicorn's handler does for a Ctrl-C now
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                events.append("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="on", log_level="warning")
    holder["server"] = server = uvicorn.Server(config)
    asyncio.run(asyncio.wait_for(server.serve(), 30))
    assert events == ["startup", "shutdown"]
