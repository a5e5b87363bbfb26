"""A small Flask app with Jinja templates, to edit while `hotswap run` serves it.

    cd examples/flask_app && hotswap run -m flask --app app run --debug --port 5000

Add a route, change a route's path, edit templates/index.html or settings.json, and save: the next request sees
it, and the in-memory guestbook is still there.
"""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask, redirect, render_template, request

# Read at import: hotswap watches settings.json and re-runs these two statements when it is saved.
SETTINGS = json.loads(Path(__file__).with_name("settings.json").read_text())
LIMIT = SETTINGS["max_entries"]

app = Flask(__name__)
guestbook: list = []  # state that a restart would lose


@app.route("/")
def index():
    return render_template("index.html", entries=guestbook)


@app.route("/sign", methods=["POST"])
def sign():
    if len(guestbook) < LIMIT:
        guestbook.append(request.form.get("name", "anonymous"))
    return redirect("/")


@app.route("/limit")
def limit():
    return f"{len(guestbook)} of {LIMIT} ({SETTINGS['owner']})"


@app.route("/count")
def count():
    return f"{len(guestbook)} entries"
