"""Logging: one info line per reload; HOTSWAP_LOG sets the level of both the Rust and the Python side."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap


def test_one_info_line_per_reload(modules, caplog):
    m = modules.load("def f():\n    return 1\n")
    with caplog.at_level(logging.INFO, logger="hotswap"):
        modules.edit(m, "def f():\n    return 2\n")
    lines = [r.getMessage() for r in caplog.records if r.name == "hotswap"]
    assert len(lines) == 1
    assert lines[0].startswith(f"{m.__name__}: patched 1") and lines[0].endswith(" ms)")


def test_hotswap_log_env_configures_python_side(tmp_path):
    (tmp_path / "logmod.py").write_text("def f():\n    return 1\n")
    script = textwrap.dedent(
        """
        import sys, hotswap, logmod
        open(logmod.__file__, "w").write("def f():\\n    return 2\\n")
        hotswap.reload(logmod)
        """
    )
    env = dict(os.environ, HOTSWAP_LOG="info", PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "hotswap INFO: logmod: patched 1" in out.stderr
    env["HOTSWAP_LOG"] = "error"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "patched" not in out.stderr


WATCH_SCRIPT = """
import logging, sys, time
sys.path.insert(0, {root!r})
import hotswap, watched
from hotswap import AutoReloader
with AutoReloader({root!r}) as reloader:
    {setup}
    with open(watched.__file__, "w") as f:
        f.write("def f():\\n    raise ValueError('first line\\\\nsecond line')\\n\\nf()\\n")
    report = reloader.wait_for_reload(timeout=20)
    assert report is not None and not report.ok, report
"""


def _run_watch(tmp_path, env_value, setup="pass"):
    (tmp_path / "watched.py").write_text("def f():\n    return 1\n")
    (tmp_path / "other.txt").write_text("")
    env = dict(os.environ, HOTSWAP_LOG=env_value)
    script = WATCH_SCRIPT.format(root=str(tmp_path), setup=setup)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    return out.stderr


def test_a_broken_save_is_logged_once_with_one_prefix_its_type_and_first_line(tmp_path):
    err = _run_watch(tmp_path, "info")
    failures = [line for line in err.splitlines() if "first line" in line]
    assert len(failures) == 1, err
    line = failures[0]
    assert line.startswith("hotswap WARNING: ") and "hotswap: " not in line, line
    assert f"{tmp_path / 'watched.py'}:2: ValueError: first line" in line, line
    assert "hotswap" not in line[len("hotswap WARNING: "):].split(tmp_path.name)[0], line


def test_debug_shows_the_watchers_decisions(tmp_path):
    err = _run_watch(tmp_path, "debug", setup="""(lambda p: open(p, "w").write("x"))({txt!r})
    with open(watched.__file__, "rb") as f: same = f.read()
    with open(watched.__file__, "wb") as f: f.write(same)
    time.sleep(0)""".format(txt=str(tmp_path / "unloaded.py")))
    path = str(tmp_path / "watched.py")
    assert f"saved {path}: reloading watched" in err, err
    assert f"saved {tmp_path / 'unloaded.py'}: skipped, no loaded module came from it" in err, err


def test_an_invalid_hotswap_log_warns_once(tmp_path):
    script = "import hotswap; hotswap._log.configure(); hotswap._log.configure()"  # imported: configured once
    env = dict(os.environ, HOTSWAP_LOG="loud", PYTHONWARNINGS="default")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("HOTSWAP_LOG='loud' names no level") == 1, out.stderr
