"""Save to first new response for web servers: `hotswap run` against the servers' own restarting reloaders.

For each framework, the same small app is served by each tool on 127.0.0.1; a handler's body is edited and saved
20 times, and the time from the save to the first response that shows the edit is taken (the server is polled
every millisecond; connection errors while a restarting reloader brings the process back are retried). The app
counts its requests in memory: "state kept" says whether that count survived every save. Prints a markdown
table; tools that are not installed are listed as unavailable.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Tuple

SAVES = 20
PY = sys.executable

FASTAPI = """\
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
app = FastAPI()
hits = [0]

@app.get("/", response_class=PlainTextResponse)
def index():
    hits[0] += 1
    return f"v0 {hits[0]}"
"""

FLASK = """\
from flask import Flask
app = Flask(__name__)
hits = [0]

@app.route("/")
def index():
    hits[0] += 1
    return f"v0 {hits[0]}"
"""

DJANGO_MANAGE = """\
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""

DJANGO_SETTINGS = """\
SECRET_KEY = "bench"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
"""

DJANGO_URLS = """\
from django.http import HttpResponse
from django.urls import path
hits = [0]

def index(request):
    hits[0] += 1
    return HttpResponse(f"v0 {hits[0]}")

urlpatterns = [path("", index)]
"""

# framework -> (files, file edited, tools: label -> argv with PORT)
CASES: Dict[str, Tuple[Dict[str, str], str, Dict[str, List[str]]]] = {
    "FastAPI": ({"app.py": FASTAPI}, "app.py", {
        "hotswap run": [PY, "-m", "hotswap", "run", "-m", "uvicorn", "app:app", "--port", "PORT"],
        "uvicorn --reload": [PY, "-m", "uvicorn", "app:app", "--reload", "--port", "PORT"],
        "uvicorn-hmr": ["uvicorn-hmr", "app:app", "--port", "PORT"],
    }),
    "Flask": ({"app.py": FLASK}, "app.py", {
        "hotswap run": [PY, "-m", "hotswap", "run", "-m", "flask", "--app", "app", "run", "--port", "PORT"],
        "flask run --debug": [PY, "-m", "flask", "--app", "app", "run", "--debug", "--port", "PORT"],
    }),
    "Django": ({"manage.py": DJANGO_MANAGE, "settings.py": DJANGO_SETTINGS, "urls.py": DJANGO_URLS}, "urls.py", {
        "hotswap run": [PY, "-m", "hotswap", "run", "manage.py", "runserver", "127.0.0.1:PORT"],
        "manage.py runserver": [PY, "manage.py", "runserver", "127.0.0.1:PORT"],
    }),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(port: int) -> Optional[str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


def wait_for(port: int, version: int, timeout_s: float = 30.0) -> Optional[Tuple[float, int]]:
    """Polls until the response shows ``v{version}``; returns (the time it did, the app's request count)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        body = fetch(port)
        if body is not None and body.startswith(f"v{version} "):
            return time.perf_counter(), int(body.split()[1])
        time.sleep(0.001)
    return None


def measure(files: Dict[str, str], edited: str, argv: List[str]) -> Tuple[List[float], bool, str]:
    """(save-to-response times in ms, whether the request count survived every save, a note)."""
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        return [], False, f"{argv[0]} not installed"
    root = Path(tempfile.mkdtemp(prefix="hotswap-bench-"))
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.Popen([a.replace("PORT", str(port)) for a in argv], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    times: List[float] = []
    counts: List[int] = []
    note = ""
    try:
        if wait_for(port, 0, 60.0) is None:
            return [], False, "did not start"
        source = (root / edited).read_text()
        for version in range(1, SAVES + 1):
            text = source.replace('f"v0 ', f'f"v{version} ')
            start = time.perf_counter()
            (root / edited).write_text(text)
            seen = wait_for(port, version)
            if seen is None:
                note = f"save {version} not served within 30 s"
                break
            times.append((seen[0] - start) * 1000)
            counts.append(seen[1])
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
    kept = len(counts) == SAVES and all(b > a for a, b in zip(counts, counts[1:])) and counts[0] > 1
    return times, kept, note


def main() -> None:
    rows = []
    for framework, (files, edited, tools) in CASES.items():
        results = {label: measure(files, edited, argv) for label, argv in tools.items()}
        base = results["hotswap run"][0]
        base_p50 = statistics.median(base) if base else None
        for label, (times, kept, note) in results.items():
            if not times:
                rows.append(f"| {framework} | {label} | n/a | n/a | n/a | n/a ({note}) |")
                continue
            p50 = statistics.median(times)
            p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
            ratio = f"{p50 / base_p50:.0f}x" if base_p50 and label != "hotswap run" else "1x"
            rows.append(f"| {framework} | {label} | {p50:.1f} ms | {p95:.1f} ms | {ratio} | "
                        f"{'yes' if kept else 'no'}{f' ({note})' if note else ''} |")
    print(f"## Save to first new response ({SAVES} saves of a handler body; `benches/servers.py`)\n")
    print("| framework | server | p50 | p95 | vs hotswap | in-memory state kept |")
    print("|---|---|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
