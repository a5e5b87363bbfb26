"""Save to first new response for web servers: `hotswap run` against the servers' own restarting reloaders.

For each framework, the same small app is served by each tool on 127.0.0.1; a handler's body is edited and saved
20 times, and the time from the save to the first response that shows the edit is taken (the server is polled
every millisecond; connection errors while a restarting reloader brings the process back are retried). The app
counts its requests in memory: "state kept" says whether that count survived every save. Prints a markdown
table; tools that are not installed are listed as unavailable. The machine's load average is printed with it:
on a shared machine, compare the ratios within one run rather than absolute times across runs.

For `hotswap run`, the save-to-response time is set beside when hotswap's line about the reload reached the bench
(the watcher noticing the save, the reload, and the line's way out through the supervisor), what the reload
itself took (from that line, the framework adapters' commit hooks included), and one request's round trip to
the server once the edit is live; the bench polls every millisecond.

uvicorn-hmr needs Python 3.12+: under an older interpreter its row runs with the newest 3.12+ interpreter
found the way `scripts/pythons.sh` finds them, in a venv of its own (`benches/.venv-hmr`, created on first use
with uvicorn-hmr and FastAPI), against the same app.

A second table: what the `sys.meta_path` finder that activates framework adapters (``hotswap.frameworks``)
adds to each import that reaches the finders, against the import of a small module from disk.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Tuple

SAVES = 20
PY = sys.executable
SETTLE_S = 1.2  # after the server answers, before each save (see measure)
TARGET_MS = 30.0  # the target for hotswap: every framework edit served in under 30 ms
HERE = Path(__file__).resolve().parent
HMR_VENV = HERE / ".venv-hmr"

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

#: Environment variables only one tool's server gets (see main).
ENV_EXTRA: Dict[str, Dict[str, str]] = {}

# framework -> (files, file edited, tools: label -> argv with PORT)
CASES: Dict[str, Tuple[Dict[str, str], str, Dict[str, List[str]]]] = {
    "FastAPI": ({"app.py": FASTAPI}, "app.py", {
        "hotswap run": [PY, "-m", "hotswap", "run", "-m", "uvicorn", "app:app", "--port", "PORT"],
        "uvicorn --reload": [PY, "-m", "uvicorn", "app:app", "--reload", "--port", "PORT"],
        "uvicorn-hmr": ["uvicorn-hmr", "app:app", "--host", "127.0.0.1", "--port", "PORT"],
    }),
    "Flask": ({"app.py": FLASK}, "app.py", {
        "hotswap run": [PY, "-m", "hotswap", "run", "-m", "flask", "--app", "app", "run", "--port", "PORT"],
        "flask run --debug (stat reloader)": [PY, "-m", "flask", "--app", "app", "run", "--debug", "--port", "PORT"],
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
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, OSError):
        return None  # a restarting server drops connections, even halfway through a response


def wait_for(port: int, version: int, timeout_s: float = 30.0) -> Optional[Tuple[float, int]]:
    """Polls until the response shows ``v{version}``; returns (the time it did, the app's request count)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        body = fetch(port)
        if body is not None and body.startswith(f"v{version} "):
            return time.perf_counter(), int(body.split()[1])
        time.sleep(0.001)
    return None


def pythons() -> Dict[str, str]:
    """The supported interpreters on this machine, as ``scripts/pythons.sh`` lists them: {"3.12": path}."""
    try:
        out = subprocess.run(["bash", str(HERE.parent / "scripts" / "pythons.sh")], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if len(line.split()) == 2
            and line.split()[1] != "-"}


def hmr_command() -> Tuple[Optional[str], str]:
    """(the ``uvicorn-hmr`` executable to use, a note): this interpreter's when it is 3.12+ and has it, else one
    in ``benches/.venv-hmr`` made with the newest 3.12+ interpreter found."""
    if sys.version_info >= (3, 12):
        here = shutil.which("uvicorn-hmr", path=os.path.dirname(PY)) or shutil.which("uvicorn-hmr")
        if here:
            return here, ""
    found = {v: p for v, p in pythons().items() if tuple(map(int, v.split("."))) >= (3, 12)}
    if not found:
        return None, "needs Python 3.12+, none found"
    version = max(found, key=lambda v: tuple(map(int, v.split("."))))
    exe = HMR_VENV / "bin" / "uvicorn-hmr"
    if not exe.exists():
        try:
            subprocess.run([found[version], "-m", "venv", str(HMR_VENV)], check=True, capture_output=True)
            subprocess.run([str(HMR_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "uvicorn-hmr", "fastapi",
                            "uvicorn"], check=True, capture_output=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as err:
            return None, f"cannot set up uvicorn-hmr with Python {version}: {err}"
    return str(exe), f"Python {version}"


_RELOAD_LINE = re.compile(r"hotswap: .*: patched .*\(([0-9.]+) ms\)")


def start_server(files: Dict[str, str], argv: List[str], stderr: int,
                 env_extra: Optional[Dict[str, str]] = None) -> Tuple[Path, int, subprocess.Popen]:
    """Writes the app's ``files`` into a fresh directory and starts ``argv`` there (PORT replaced by a free port),
    in its own session: (the directory, the port, the process)."""
    root = Path(tempfile.mkdtemp(prefix="hotswap-bench-"))
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", **(env_extra or {})}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.Popen([a.replace("PORT", str(port)) for a in argv], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    return root, port, proc


def stop_server(proc: subprocess.Popen) -> None:
    """Ctrl-C to the server's whole session, then SIGKILL if it has not ended within 10 s."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def measure(files: Dict[str, str], edited: str, argv: List[str], env_extra: Optional[Dict[str, str]] = None
            ) -> Dict[str, object]:
    """Save-to-response times in ms, whether the request count survived every save, hotswap's own reload times
    (from its lines), one request's round trip once each edit is live, and a note."""
    result: Dict[str, object] = {"times": [], "kept": False, "reloads": [], "requests": [], "said_after": [],
                                 "note": ""}
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        result["note"] = f"{argv[0]} not installed"
        return result
    # The server's stderr is read as it comes: each of hotswap's reload lines is timestamped on arrival.
    root, port, proc = start_server(files, argv, subprocess.PIPE, env_extra)
    lines: List[Tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.perf_counter(), line.decode(errors="replace"))
                                                          for line in proc.stderr), daemon=True)
    reader.start()
    saved_at: List[float] = []
    times: List[float] = []
    counts: List[int] = []
    requests: List[float] = []
    try:
        if wait_for(port, 0, 60.0) is None:
            result["note"] = "did not start"
            return result
        # Restarting reloaders that poll (Django's StatReloader, every second) take their first snapshot of the
        # files a moment after the server (re)starts: a save before it would never be seen. Not part of any timing.
        time.sleep(SETTLE_S)
        source = (root / edited).read_text()
        for version in range(1, SAVES + 1):
            text = source.replace('f"v0 ', f'f"v{version} ')
            start = time.perf_counter()
            (root / edited).write_text(text)
            saved_at.append(start)
            seen = wait_for(port, version)
            if seen is None:
                result["note"] = f"save {version} not served within 30 s"
                break
            times.append((seen[0] - start) * 1000)
            counts.append(seen[1])
            before = time.perf_counter()
            if fetch(port) is not None:
                requests.append((time.perf_counter() - before) * 1000)
            counts[-1] += 1  # the round trip above was one more request
            time.sleep(SETTLE_S)
    finally:
        stop_server(proc)
        reader.join(10)
        proc.stderr.close()
        said = [(at, float(m.group(1))) for at, m in ((at, _RELOAD_LINE.search(line)) for at, line in lines) if m]
        reloads = [duration for _, duration in said]
        # Save to hotswap's line about it reaching this process: watcher, reload, and the line's way out.
        said_after = [next(((at - start) * 1000 for at, _ in said if at > start), float("nan")) for start in saved_at]
        shutil.rmtree(root, ignore_errors=True)
    result.update(times=times, requests=requests, reloads=reloads, said_after=said_after,
                  kept=len(counts) == SAVES and all(b > a for a, b in zip(counts, counts[1:])) and counts[0] > 1)
    return result


def median(values: List[float]) -> float:
    return statistics.median(values) if values else float("nan")


def finder_table(n: int = 300) -> List[str]:
    """Cost of the adapters' ``sys.meta_path`` finder per import: its ``find_spec`` for a name it does not await
    (what every import that reaches the finders pays), against importing a small module from disk."""
    import importlib

    from hotswap import frameworks

    frameworks.install()
    finder = frameworks._finder
    calls = 200_000
    start = time.perf_counter_ns()
    for _ in range(calls):
        finder.find_spec("some_module_nobody_awaits", None)
    per_call = (time.perf_counter_ns() - start) / calls

    class Empty:
        def find_spec(self, fullname: str, path: object, target: object = None) -> None:
            return None

    empty = Empty()
    start = time.perf_counter_ns()
    for _ in range(calls):
        empty.find_spec("some_module_nobody_awaits", None)
    floor = (time.perf_counter_ns() - start) / calls
    root = Path(tempfile.mkdtemp(prefix="hotswap-finder-"))
    sys.path.insert(0, str(root))
    try:
        timings: Dict[bool, List[float]] = {True: [], False: []}
        for i in range(2 * n):
            (root / f"finder_probe_{i}.py").write_text(f"X = {i}\n")
        importlib.invalidate_caches()
        for i in range(2 * n):
            with_finder = i % 2 == 0
            if with_finder and finder not in sys.meta_path:
                sys.meta_path.insert(0, finder)
            elif not with_finder and finder in sys.meta_path:
                sys.meta_path.remove(finder)
            start = time.perf_counter_ns()
            importlib.import_module(f"finder_probe_{i}")
            timings[with_finder].append((time.perf_counter_ns() - start) / 1000)
        if finder not in sys.meta_path:
            sys.meta_path.insert(0, finder)
    finally:
        sys.path.remove(str(root))
        shutil.rmtree(root, ignore_errors=True)
    without, with_ = statistics.median(timings[False]), statistics.median(timings[True])
    return [
        "## Framework adapters' import finder (`benches/servers.py`)\n",
        "| measure | median |",
        "|---|---:|",
        f"| `find_spec` of the finder, per import reaching it | {per_call:.0f} ns |",
        f"| `find_spec` of a finder that returns None at once (the floor of any finder in Python) | {floor:.0f} ns |",
        f"| import of a small module from disk, finder removed | {without:.1f} us |",
        f"| import of a small module from disk, finder installed | {with_:.1f} us |",
        f"| the finder's share of that import | {per_call / 1000 / without * 100:.2f} % |",
    ]


# --- framework edits under hotswap run: not only a handler body --------------------------------------------------

KIND_SAVES = 10

FASTAPI_KINDS = """\
from fastapi import FastAPI
from pydantic import BaseModel
app = FastAPI()

class Item(BaseModel):
    name: str

@app.get("/r0")
def route():
    return {"route": 0}

@app.post("/item")
def item(body: Item):
    return body
"""

FLASK_KINDS = """\
from flask import Flask
app = Flask(__name__)

@app.route("/")
def index():
    return "index"
"""

DJANGO_KINDS_URLS = """\
from django.http import HttpResponse
from django.urls import path

def index(request):
    return HttpResponse("index")

urlpatterns = [path("p0", index)]
"""


def request(port: int, path: str, payload: Optional[bytes] = None) -> Optional[str]:
    """The body of a 200 answer to GET (or POST ``payload`` as JSON) ``path``, else None."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=payload,
                                 headers={"content-type": "application/json"} if payload else {})
    try:
        with urllib.request.urlopen(req, timeout=2) as response:
            return response.read().decode() if response.status == 200 else None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, OSError):
        return None


# framework -> (files, file edited, argv, [(edit kind, edit(text, k) -> text, served(port, k) -> bool)])
KINDS = {
    "FastAPI": ({"app.py": FASTAPI_KINDS}, "app.py",
                [PY, "-m", "hotswap", "run", "-m", "uvicorn", "app:app", "--port", "PORT"], [
        ("route path changed (`@app.get(\"/r0\")` -> `\"/r1\"`)",
         lambda text, k: text.replace(f'@app.get("/r{k - 1}")', f'@app.get("/r{k}")'),
         lambda port, k: request(port, f"/r{k}") is not None),
        ("Pydantic field added (validated and returned)",
         lambda text, k: text.replace("    name: str\n", f"    name: str\n    f{k}: int = {k}\n"),
         lambda port, k: f'"f{k}":{k}' in (request(port, "/item", b'{"name": "x"}') or "")),
    ]),
    "Flask": ({"app.py": FLASK_KINDS}, "app.py",
              [PY, "-m", "hotswap", "run", "-m", "flask", "--app", "app", "run", "--port", "PORT"], [
        ("route added after requests were served",
         lambda text, k: text + f'\n@app.route("/n{k}")\ndef n{k}():\n    return "n{k}"\n',
         lambda port, k: request(port, f"/n{k}") == f"n{k}"),
    ]),
    "Django": ({"manage.py": DJANGO_MANAGE, "settings.py": DJANGO_SETTINGS, "urls.py": DJANGO_KINDS_URLS}, "urls.py",
               [PY, "-m", "hotswap", "run", "manage.py", "runserver", "127.0.0.1:PORT"], [
        ("URLconf path changed",
         lambda text, k: text.replace(f'path("p{k - 1}"', f'path("p{k}"'),
         lambda port, k: request(port, f"/p{k}") is not None),
    ]),
}


def kinds_table() -> List[str]:
    """Save to first answer showing the edit under ``hotswap run``, p50 over KIND_SAVES saves of each kind."""
    rows = ["| framework | edit | p50 | p95 | target < 30 ms |", "|---|---|---:|---:|---|"]
    for framework, (files, edited, argv, kinds) in KINDS.items():
        root, port, proc = start_server(files, argv, subprocess.DEVNULL)
        try:
            deadline = time.perf_counter() + 60
            while request(port, "/") is None and request(port, "/p0") is None and request(port, "/r0") is None:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{framework} did not start")
                time.sleep(0.01)
            for kind, edit, served in kinds:
                times: List[float] = []
                for k in range(1, KIND_SAVES + 1):
                    text = edit((root / edited).read_text(), k)
                    start = time.perf_counter()
                    (root / edited).write_text(text)
                    while not served(port, k):
                        if time.perf_counter() - start > 30:
                            break
                        time.sleep(0.001)
                    else:
                        times.append((time.perf_counter() - start) * 1000)
                    time.sleep(0.2)
                if len(times) < KIND_SAVES:
                    rows.append(f"| {framework} | {kind} | n/a | n/a | not served within 30 s "
                                f"({len(times)} of {KIND_SAVES}) |")
                    continue
                p50, p95 = statistics.median(times), sorted(times)[max(0, int(len(times) * 0.95) - 1)]
                rows.append(f"| {framework} | {kind} | {p50:.1f} ms | {p95:.1f} ms | "
                            f"{'met' if p50 < TARGET_MS else 'missed'} |")
        finally:
            stop_server(proc)
            shutil.rmtree(root, ignore_errors=True)
    return rows


def _werkzeug_stat_reloader() -> Dict[str, str]:
    """werkzeug picks its watchdog reloader when watchdog is importable (this venv has it, for jurigged); that
    reloader watches site-packages and the standard library recursively and, with this venv's size, overflows
    the inotify queue and misses saves. `flask run --debug` is measured with werkzeug's stat reloader, what it
    uses without watchdog: a stand-in `watchdog` package first on its path refuses to import."""
    stub = Path(tempfile.mkdtemp(prefix="hotswap-bench-nowatchdog-")) / "watchdog"
    stub.mkdir()
    (stub / "__init__.py").write_text('raise ImportError("hidden by benches/servers.py")\n')
    return {"PYTHONPATH": str(stub.parent)}


def main() -> None:
    if sys.argv[1:] == ["--kinds"]:  # only the framework-edits table
        print_kinds()
        return
    ENV_EXTRA["flask run --debug (stat reloader)"] = _werkzeug_stat_reloader()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    hmr, hmr_note = hmr_command()
    rows = []
    for framework, (files, edited, tools) in CASES.items():
        tools = dict(tools)
        if "uvicorn-hmr" in tools:
            tools["uvicorn-hmr"] = [hmr or "uvicorn-hmr", *tools["uvicorn-hmr"][1:]]
        results = {label: measure(files, edited, argv, ENV_EXTRA.get(label)) for label, argv in tools.items()}
        if "uvicorn-hmr" in results and not hmr:
            results["uvicorn-hmr"]["note"] = hmr_note
        base = results["hotswap run"]["times"]
        base_p50 = statistics.median(base) if base else None
        for label, result in results.items():
            times, note = result["times"], result["note"]
            if label == "uvicorn-hmr" and hmr_note and times:
                note = hmr_note
            if not times:
                rows.append(f"| {framework} | {label} | n/a | n/a | n/a | | n/a ({note}) |")
                continue
            p50 = statistics.median(times)
            p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
            ratio = f"{p50 / base_p50:.0f}x" if base_p50 and label != "hotswap run" else "1x"
            split = ""
            if label == "hotswap run":
                split = (f"target < {TARGET_MS:.0f} ms ({'met' if p50 < TARGET_MS else 'missed'}); its reload line "
                         f"after {median(result['said_after']):.1f} ms, of which the reload "
                         f"{median(result['reloads']):.1f} ms; one request {median(result['requests']):.1f} ms")
            rows.append(f"| {framework} | {label} | {p50:.1f} ms | {p95:.1f} ms | {ratio} | {split} | "
                        f"{'yes' if result['kept'] else 'no'}{f' ({note})' if note else ''} |")
    print(f"## Save to first new response ({SAVES} saves of a handler body; `benches/servers.py`)\n")
    print(f"Load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; Python "
          f"{sys.version.split()[0]}.\n")
    print("| framework | server | p50 | p95 | vs hotswap | hotswap: target, and where the time goes (p50) | "
          "in-memory state kept |")
    print("|---|---|---:|---:|---:|---|---|")
    print("\n".join(rows))
    print()
    print_kinds()
    print()
    print("\n".join(finder_table()))


def print_kinds() -> None:
    print(f"## Framework edits under `hotswap run` (save to first answer showing the edit, {KIND_SAVES} saves each; "
          "`benches/servers.py`)\n")
    print("\n".join(kinds_table()))


if __name__ == "__main__":
    main()
