"""The example apps in examples/ under `hotswap run`, as their READMEs say: a copy of each is served over loopback
HTTP while its files are edited; the new code is served and the app's in-memory state survives every edit."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest
from proc_helpers import Run, free_port, get, serves

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def example(tmp_path):
    runs: list[Run] = []

    def start(name: str, *args: str) -> tuple[Path, Run, int]:
        root = tmp_path / name
        shutil.copytree(EXAMPLES / name, root, ignore=shutil.ignore_patterns("__pycache__"))
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        run = Run([a.replace("PORT", str(port)) for a in args], root, env)
        runs.append(run)
        return root, run, port

    yield start
    for run in runs:
        run.close()


def replace(path: Path, old: str, new: str, *more: tuple) -> None:
    """Replaces ``old`` with ``new`` (and each further ``(old, new)`` pair) in ``path``, in one save."""
    text = path.read_text()
    for before, after in ((old, new), *more):
        assert before in text, f"{before!r} not in {path}"
        text = text.replace(before, after)
    path.write_text(text)


def post(port: int, path: str, payload: dict) -> tuple:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(payload).encode(),
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        body = err.read()
        return err.code, json.loads(body) if body.startswith((b"{", b"[")) else body.decode()


def test_fastapi_example(example):
    root, run, port = example("fastapi_app", "-m", "uvicorn", "app:app", "--port", "PORT")
    try:
        _fastapi_steps(root, run, port)
    except (AssertionError, OSError) as err:
        raise AssertionError(f"{err}\nstderr: " + "\n".join(run.err)) from err


def _fastapi_steps(root: Path, run: Run, port: int) -> None:
    serves(port, "/hello", '{"message":"hello","visits":1}')
    assert post(port, "/todos", {"title": "write docs"}) == (200, {"id": 1, "title": "write docs"}), run.err
    app = root / "app.py"
    replace(app, '@app.get("/hello")', '@app.get("/hi")')
    serves(port, "/hi", '{"message":"hello","visits":2}')
    assert get(port, "/hello")[0] == 404
    # One save with the three changes (saved one by one, the last could still be on its way when the schema
    # already shows the new field).
    replace(app, "class TodoIn(BaseModel):\n    title: str\n", "class TodoIn(BaseModel):\n    title: str\n"
            "    done: bool = False\n",
            ("class TodoOut(BaseModel):\n    id: int\n    title: str\n",
             "class TodoOut(BaseModel):\n    id: int\n    title: str\n    done: bool = False\n"),
            ("return TodoOut(id=row.id, title=row.title)\n\n\n@app.get",
             "return TodoOut(id=row.id, title=row.title, done=todo.done)\n\n\n@app.get"))

    serves(port, "/openapi.json", lambda body: '"done"' in body)  # the new field is in the app's schema
    assert post(port, "/todos", {"title": "x", "done": "maybe"})[0] == 422
    assert post(port, "/todos", {"title": "ship", "done": True}) == (200, {"id": 2, "title": "ship", "done": True})
    serves(port, "/todos", '["#1 write docs","#2 ship"]')


def test_flask_example(example):
    root, run, port = example("flask_app", "-m", "flask", "--app", "app", "run", "--debug", "--port", "PORT")
    try:
        _flask_steps(root, run, port)
    except (AssertionError, OSError) as err:
        raise AssertionError(f"{err}\nstderr: " + "\n".join(run.err)) from err


def _flask_steps(root: Path, run: Run, port: int) -> None:
    serves(port, "/count", "0 entries")
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/sign", data=b"name=ada"), timeout=5)
    serves(port, "/count", "1 entries")
    replace(root / "app.py", '@app.route("/count")', '@app.route("/total")')
    serves(port, "/total", "1 entries")
    assert get(port, "/count")[0] == 404
    with open(root / "app.py", "a") as f:
        f.write('\n\n@app.route("/about")\ndef about():\n    return "about " + str(len(guestbook))\n')
    serves(port, "/about", "about 1")
    serves(port, "/", lambda body: "<li>ada</li>" in body and "<h1>Guestbook</h1>" in body)
    replace(root / "templates" / "index.html", "<h1>Guestbook</h1>", "<h1>Signatures</h1>")
    serves(port, "/", lambda body: "<li>ada</li>" in body and "<h1>Signatures</h1>" in body)
    run.wait_err("werkzeug's reloader bypassed")
    # settings.json is read by app.py at import: saving it re-runs those statements; the guestbook stays.
    serves(port, "/limit", "1 of 100 (the front desk)")
    (root / "settings.json").write_text('{"owner": "the night desk", "max_entries": 1}')
    serves(port, "/limit", "1 of 1 (the night desk)")
    run.wait_err("settings.json saved")
    (root / "settings.json").write_text('{"owner": ')  # broken: reported, the old settings stay
    run.wait_err("JSONDecodeError")
    serves(port, "/limit", "1 of 1 (the night desk)")


def test_django_example(example):
    root, run, port = example("django_app", "manage.py", "runserver", "127.0.0.1:PORT")
    serves(port, "/count", "0 notes")
    assert get(port, "/add?text=hello") == (200, "1 notes")
    replace(root / "mysite" / "views.py", 'HttpResponse(f"{len(notes)} notes")\n\n\ndef count',
            'HttpResponse(f"{len(notes)} notes added")\n\n\ndef count')
    replace(root / "mysite" / "urls.py", 'path("count", views.count),', 'path("count", views.count),\n'
            '    path("total", views.count),')
    serves(port, "/total", "1 notes")
    serves(port, "/add?text=again", "2 notes added")
    serves(port, "/", lambda body: "<li>hello</li>" in body and "<h1>Notes</h1>" in body)
    replace(root / "templates" / "index.html", "<h1>Notes</h1>", "<h1>All notes</h1>")
    serves(port, "/", lambda body: "<li>again</li>" in body and "<h1>All notes</h1>" in body)
    run.wait_err("Django's autoreloader bypassed")
