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
