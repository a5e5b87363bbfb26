"""The IPython extension in an in-process shell: the `%hotswap` magic, what is watched, when saves apply."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import uuid
from pathlib import Path

import pexpect
import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from conftest import wait_until
from hotswap.ipython import project_dirs, reloader_of


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory):
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        yield InteractiveShell.instance(config=config)
    InteractiveShell.clear_instance()


@pytest.fixture
def ip(shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The shell with hotswap loaded, working in an empty project directory that is on sys.path."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    shell.run_line_magic("load_ext", "hotswap")
    yield shell
    shell.run_line_magic("unload_ext", "hotswap")


def cell(shell, code: str) -> None:
    result = shell.run_cell(textwrap.dedent(code))
    assert result.success, (result.error_before_exec, result.error_in_exec)


def write(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


def fresh_name() -> str:
    return f"nb_{uuid.uuid4().hex[:10]}"


def new_module(shell, source: str, names: str = "f") -> str:
    """Writes a fresh module in the project and runs the cell `from <module> import <names>`; returns its name."""
    name = fresh_name()
    write(Path(f"{name}.py"), source)
    cell(shell, f"from {name} import {names}")
    return name


def wait_pending(shell, name: str) -> None:
    assert wait_until(lambda: name in reloader_of(shell).pending, timeout=10), f"{name} was never queued"


def test_import_hotswap_does_not_import_ipython():
    code = "import sys, hotswap; print(callable(hotswap.load_ipython_extension), 'IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]


def test_status_lists_roots_modules_and_last_reloads(ip, capsys):
    name = fresh_name()
    write(Path(name) / "__init__.py", "")
    write(Path(name) / "calc.py", "def f():\n    return 1\n")
    cell(ip, f"from {name}.calc import f")
    capsys.readouterr()
    ip.run_line_magic("hotswap", "")
    status = capsys.readouterr().out
    assert status.startswith("hotswap: on, mode changed, applied before each cell"), status
    assert str(Path(name).resolve()) in status and f"{name}.calc" in status, status
    write(Path(name) / "calc.py", "def f():\n    return 2\n")
    wait_pending(ip, f"{name}.calc")
    ip.run_line_magic("hotswap", "")
    assert f"pending: {name}.calc" in capsys.readouterr().out
    cell(ip, "result = f()")
    assert ip.user_ns["result"] == 2
    assert capsys.readouterr().out.startswith(f"hotswap: {name}.calc: patched 1 (")
    ip.run_line_magic("hotswap", "")
    assert f"last reloads:\n  hotswap: {name}.calc: patched 1" in capsys.readouterr().out


def test_off_queues_saves_until_on(ip):
    name = new_module(ip, "def f():\n    return 'one'\n")
    ip.run_line_magic("hotswap", "off")
    write(Path(f"{name}.py"), "def f():\n    return 'two'\n")
    wait_pending(ip, name)
    cell(ip, "result = f()")
    assert ip.user_ns["result"] == "one"
    ip.run_line_magic("hotswap", "on")
    cell(ip, "result = f()")
    assert ip.user_ns["result"] == "two"


def test_reload_module_now_even_when_off(ip, capsys):
    name = new_module(ip, "LIMIT = 1\n\ndef f():\n    return LIMIT\n", "f, LIMIT")
    ip.run_line_magic("hotswap", "off")
    write(Path(f"{name}.py"), "LIMIT = 7\n\ndef f():\n    return LIMIT\n")
    capsys.readouterr()
    ip.run_line_magic("hotswap", f"reload {name}")
    assert capsys.readouterr().out.startswith(f"hotswap: {name}: ")
    # The function reads the new constant; the notebook's `from m import LIMIT` is rebound.
    assert ip.user_ns["f"]() == 7 and ip.user_ns["LIMIT"] == 7
    ip.run_line_magic("hotswap", "reload no_such_module_here")
    assert "no module named 'no_such_module_here'" in capsys.readouterr().err


def test_aliased_constant_from_a_cell_import_is_rebound(ip):
    name = new_module(ip, "RATE = 3\n", "RATE as rate")
    write(Path(f"{name}.py"), "RATE = 4\n")
    wait_pending(ip, name)
    cell(ip, "result = rate")
    assert ip.user_ns["result"] == 4


def test_a_file_a_module_read_at_import_is_applied_before_the_next_cell(ip):
    write(Path("limits.json"), '{"rate": 3}')
    name = new_module(ip, "import json\nwith open('limits.json') as fh:\n    RATE = json.load(fh)['rate']\n\n"
                          "def f():\n    return RATE\n", "f, RATE as rate")
    write(Path("limits.json"), '{"rate": 4}')
    wait_pending(ip, name)
    cell(ip, "result = (f(), rate)")
    assert ip.user_ns["result"] == (4, 4)  # the function reads the new value; the notebook's name is rebound


def test_mode_module_runs_every_statement(ip):
    name = fresh_name()
    source = "import sys\nruns = getattr(sys.modules[__name__], 'runs', 0) + 1\n\ndef f():\n    return {}\n"
    write(Path(f"{name}.py"), source.format(1))
    cell(ip, f"import {name} as m")
    write(Path(f"{name}.py"), source.format(2))
    wait_pending(ip, name)
    cell(ip, "result = (m.runs, m.f())")
    assert ip.user_ns["result"] == (1, 2)  # changed mode: the unchanged counter statement did not run
    ip.run_line_magic("hotswap", "mode module")
    write(Path(f"{name}.py"), source.format(3))
    wait_pending(ip, name)
    cell(ip, "result = (m.runs, m.f())")
    assert ip.user_ns["result"] == (2, 3)


def test_apply_thread_applies_without_a_cell(ip):
    name = new_module(ip, "def f():\n    return 1\n")
    ip.run_line_magic("hotswap", "apply thread")
    write(Path(f"{name}.py"), "def f():\n    return 2\n")
    f = ip.user_ns["f"]
    assert wait_until(lambda: f() == 2, timeout=10)
    ip.run_line_magic("hotswap", "apply cell")
    write(Path(f"{name}.py"), "def f():\n    return 3\n")
    wait_pending(ip, name)
    assert f() == 2
    cell(ip, "pass")
    assert f() == 3


def test_writefile_cell_is_applied_at_the_next_cell(ip):
    name = new_module(ip, "def f():\n    return 'before'\n")
    # Run All: the next cell comes at once, before the watcher could report the write.
    cell(ip, f"%%writefile {name}.py\ndef f():\n    return 'after'\n")
    cell(ip, "result = f()")
    assert ip.user_ns["result"] == "after"


def test_outside_the_project_is_watched_only_when_asked(ip, tmp_path: Path, capsys):
    outside = tmp_path / "vendor"
    name = fresh_name()
    write(outside / f"{name}.py", "def f():\n    return 'a'\n")
    cell(ip, f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("{name}", r"{outside / f'{name}.py'}")
        mod = importlib.util.module_from_spec(spec); sys.modules["{name}"] = mod; spec.loader.exec_module(mod)
    """)
    reloader = reloader_of(ip)
    assert str(outside.resolve()) not in reloader.roots
    ip.run_line_magic("hotswap", f"watch {name}")
    # A plain module is watched on its own, not its whole directory.
    module_file = (outside / f"{name}.py").resolve()
    assert capsys.readouterr().out.strip() == f"hotswap: watching {module_file}"
    ip.run_line_magic("hotswap", "")
    assert f"  {module_file}: {name}\n" in capsys.readouterr().out
    write(outside / f"{name}.py", "def f():\n    return 'b'\n")
    wait_pending(ip, name)
    cell(ip, "result = mod.f()")
    assert ip.user_ns["result"] == "b"


def test_project_dirs_rule(tmp_path: Path):
    stdlib = sysconfig.get_paths()["stdlib"]
    purelib = sysconfig.get_paths()["purelib"]
    dirs = project_dirs(cwd=str(tmp_path), path=["", stdlib, purelib, str(tmp_path / "missing")])
    assert dirs == (str(tmp_path.resolve()),)
    src = tmp_path / "src"
    src.mkdir()
    assert project_dirs(cwd=str(tmp_path), path=[str(src)]) == (str(src.resolve()), str(tmp_path.resolve()))


def test_a_project_holding_its_virtual_environment_is_the_projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # uv and poetry put .venv in the project; a flat editable install puts the project on sys.path.
    venv = tmp_path / ".venv"
    (venv / "lib").mkdir(parents=True)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.setattr(sys, "exec_prefix", str(venv))
    dirs = project_dirs(cwd=str(notebooks), path=[str(tmp_path), str(venv / "lib")])
    assert dirs == (str(notebooks.resolve()), str(tmp_path.resolve()))


def test_unknown_command_prints_usage(ip, capsys):
    ip.run_line_magic("hotswap", "frobnicate")
    out = capsys.readouterr().out
    assert "%hotswap on | off" in out and "%hotswap mode changed|module" in out
    ip.run_line_magic("hotswap", "mode sideways")
    assert "mode must be 'changed' or 'module'" in capsys.readouterr().err


def test_unload_stops_watching(shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    name = fresh_name()
    write(tmp_path / f"{name}.py", "def f():\n    return 1\n")
    shell.run_line_magic("load_ext", "hotswap")
    cell(shell, f"from {name} import f")
    reloaders = reloader_of(shell).reloaders
    assert reloaders and all(r.running for r in reloaders)
    shell.run_line_magic("unload_ext", "hotswap")
    assert not any(r.running for r in reloaders)
    capsys.readouterr()
    shell.run_line_magic("hotswap", "")
    assert "not loaded" in capsys.readouterr().err
    write(tmp_path / f"{name}.py", "def f():\n    return 2\n")
    cell(shell, "result = f()")
    assert shell.user_ns["result"] == 1


def test_terminal_ipython_with_the_extension_in_its_profile(tmp_path: Path):
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_config.py").write_text('c.InteractiveShellApp.extensions = ["hotswap"]\n')
    project = tmp_path / "project"
    write(project / "shop.py", "def price(x):\n    return x * 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSWAP_LOG")}
    env.update(IPYTHONDIR=str(tmp_path / "ipython"), TERM="dumb")
    child = pexpect.spawn(sys.executable, ["-m", "IPython", "--simple-prompt", "--no-banner", "--colors=NoColor"],
                          cwd=str(project), env=env, encoding="utf-8", timeout=60)
    try:
        child.expect_exact("In [1]: ")
        child.sendline("from shop import price; price(10)")
        child.expect_exact("Out[1]: 20")
        child.expect_exact("In [2]: ")
        # A cell that runs until the extension has the save queued: the save lands during it.
        child.sendline("import time; from hotswap.ipython import reloader_of; deadline = time.monotonic() + 20; "
                       "print('started'); "
                       "_ = list(iter(lambda: time.sleep(0.01) or 'shop' in reloader_of(get_ipython()).pending "
                       "or time.monotonic() > deadline, True)); price(10)")
        child.expect_exact("started\r\n")  # the cell runs (the echoed input has a quote after the word)
        write(project / "shop.py", "def price(x):\n    return -x\n")
        child.expect_exact("Out[2]: 20")
        child.expect_exact("In [3]: ")
        child.sendline("price(10)")
        child.expect(r"hotswap: shop: patched 1 \([0-9.]+ ms\)\r?\n")
        child.expect_exact("Out[3]: -10")
        child.expect_exact("In [4]: ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_a_cell_that_imports_nothing_looks_at_no_module(ip, monkeypatch: pytest.MonkeyPatch):
    # What keeps a cell's cost flat in the number of imported modules: sys.modules is walked only after a cell
    # that changed it, and saves come from the watcher.
    import hotswap.ipython as extension

    scans = []
    real = extension.project_dirs
    monkeypatch.setattr(extension, "project_dirs", lambda *a, **k: scans.append(1) or real(*a, **k))
    cell(ip, "x = 1")  # the shell's first cells may import a module of its own
    scans.clear()
    for _ in range(20):
        cell(ip, "x = 1")
    assert scans == []
    name = fresh_name()
    write(Path(f"{name}.py"), "def f():\n    return 1\n")
    cell(ip, f"import {name}")
    assert len(scans) == 1 and name in " ".join(reloader_of(ip).status().split())
