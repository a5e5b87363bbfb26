"""`%load_ext hotswap` in a real Jupyter kernel (ipykernel), driven through jupyter_client over loopback.

Each test starts a kernel in a temporary project directory, runs cells, saves files the way an editor does, and
asserts on the cells' outputs. A save is waited for through the extension's own queue (``pending``), read with a
silent request that runs no cell, the way a user's next cell comes some time after the save.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import pytest

with warnings.catch_warnings():
    # jupyter_core 5 warns at import about its coming move to platformdirs (seen with the 3.9 stack).
    warnings.simplefilter("ignore", DeprecationWarning)
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

from conftest import wait_until

PENDING = "__import__('hotswap.ipython', fromlist=['_']).reloader_of(get_ipython()).pending"


@dataclass
class Output:
    stdout: str = ""
    stderr: str = ""
    result: str = ""
    error: List[str] = field(default_factory=list)


class Kernel:
    """A kernel started with this interpreter in ``cwd``, with its own IPython directory (no user profile)."""

    def __init__(self, root: Path, cwd: Path) -> None:
        spec_dir = root / "kernels" / "hotswap-test"
        spec_dir.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "t", "language": "python"}))
        self.manager = KernelManager(
            kernel_name="hotswap-test",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(root / "kernels")]),
            connection_file=str(root / f"kernel-{uuid.uuid4().hex[:8]}.json"),
            ip="127.0.0.1",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "HOTSWAP_LOG"))}
        env["IPYTHONDIR"] = str(root / "ipython")
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        self.manager.start_kernel(cwd=str(cwd), env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60) -> Output:
        out = Output()

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                setattr(out, content["name"], getattr(out, content["name"]) + content["text"])
            elif kind == "execute_result":
                out.result += content["data"].get("text/plain", "")
            elif kind == "error":
                out.error.append(f"{content['ename']}: {content['evalue']}")

        self.client.execute_interactive(textwrap.dedent(code), output_hook=hook, timeout=timeout)
        return out

    def evaluate(self, expression: str) -> str:
        """Evaluates an expression without running a cell (no pre/post_run_cell events)."""
        reply = self.client.execute_interactive("", silent=True, user_expressions={"x": expression}, timeout=30)
        value = reply["content"]["user_expressions"]["x"]
        assert value["status"] == "ok", value
        return value["data"]["text/plain"]

    def wait_pending(self, module: str, timeout: float = 10) -> None:
        assert wait_until(lambda: module in self.evaluate(PENDING), timeout=timeout), f"{module} never pending"

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def kernel(tmp_path: Path, project: Path):
    k = Kernel(tmp_path, project)
    yield k
    k.close()


def write(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


MODEL = """\
    RATE = 2

    def price(x):
        return x * RATE

    class Cart:
        def __init__(self):
            self.items = [1, 2]

        def total(self):
            return sum(self.items)
    """


def test_edit_reaches_references_the_notebook_holds(kernel: Kernel, project: Path):
    write(project / "shop.py", MODEL)
    assert kernel.run("%load_ext hotswap").error == []
    out = kernel.run("""
        import shop
        from shop import price, RATE, Cart as Basket
        cart = Basket()
        print(price(10), RATE, cart.total())
    """)
    assert out.stdout == "20 2 3\n", out
    edited = MODEL.replace("RATE = 2", "RATE = 5").replace("sum(self.items)", "sum(self.items) * 100")
    write(project / "shop.py", edited)
    kernel.wait_pending("shop")
    out = kernel.run("print(price(10), RATE, cart.total(), isinstance(cart, shop.Cart), Basket is shop.Cart)")
    # One line for the reload, before the cell's own output; the constant imported with `from shop import RATE`
    # is rebound in the notebook, the function and the instance run the new code.
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out
    assert lines[0].startswith("hotswap: shop: ") and "patched" in lines[0], out
    assert lines[1] == "50 5 300 True True", out
    assert out.stderr == "" and out.error == []
    # A fresh import of the new source agrees.
    fresh = kernel.run("""
        import importlib.util
        spec = importlib.util.spec_from_file_location("shop_fresh", "shop.py")
        fresh = importlib.util.module_from_spec(spec); spec.loader.exec_module(fresh)
        print(fresh.price(10), fresh.RATE, fresh.Cart().total())
    """)
    assert fresh.stdout == "50 5 300\n"


def test_broken_save_is_one_line_and_old_code_keeps_running(kernel: Kernel, project: Path):
    write(project / "shop.py", MODEL)
    kernel.run("%load_ext hotswap")
    kernel.run("from shop import price")
    write(project / "shop.py", MODEL.replace("return x * RATE", "return x * * RATE"))  # line 4, on every version
    kernel.wait_pending("shop")
    out = kernel.run("print(price(10))")
    assert out.stdout == "20\n", out
    assert out.error == []
    err = out.stderr.strip().splitlines()
    assert len(err) == 1, out
    assert "shop.py:4" in err[0] and "SyntaxError" in err[0] and "old code" in err[0], out
    # The same broken content is not reported again; the next good save applies.
    assert kernel.run("print(price(1))").stderr == ""
    write(project / "shop.py", MODEL.replace("return x * RATE", "return x * RATE + 1"))
    kernel.wait_pending("shop")
    out = kernel.run("print(price(10))")
    assert out.stdout.splitlines()[-1] == "21", out
    assert out.stderr == ""


def test_module_imported_after_the_extension_loaded(kernel: Kernel, project: Path):
    kernel.run("%load_ext hotswap")
    assert "watching nothing yet" in kernel.run("%hotswap").stdout
    write(project / "pkg" / "__init__.py", "")
    write(project / "pkg" / "tools.py", "def tool():\n    return 'old'\n")
    write(project / "helpers.py", "def helper():\n    return 'old'\n")
    kernel.run("from pkg.tools import tool\nimport helpers\nh = helpers.helper")
    status = kernel.run("%hotswap").stdout
    assert str((project / "pkg").resolve()) in status and "helpers" in status and "pkg.tools" in status, status
    write(project / "pkg" / "tools.py", "def tool():\n    return 'new'\n")
    write(project / "helpers.py", "def helper():\n    return 'new'\n")
    kernel.wait_pending("pkg.tools")
    kernel.wait_pending("helpers")
    out = kernel.run("print(tool(), h())")
    assert out.stdout.splitlines()[-1] == "new new", out
    assert sorted(line.split(":")[1].strip() for line in out.stdout.splitlines()[:-1]) == ["helpers", "pkg.tools"]


def test_save_during_a_long_cell_applies_before_the_next_cell(kernel: Kernel, project: Path):
    write(project / "shop.py", MODEL)
    kernel.run("%load_ext hotswap\nfrom shop import price")
    outputs: List[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            outputs.append(msg["content"]["text"])

    msg_id = kernel.client.execute(textwrap.dedent(f"""
        import time
        first = price(10)
        print("started", flush=True)
        deadline = time.monotonic() + 20
        while "shop" not in {PENDING} and time.monotonic() < deadline:
            time.sleep(0.01)
        print(first, price(10), "shop" in {PENDING})
    """))
    saved = False
    while True:
        msg = kernel.client.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        hook(msg)
        if not saved and "started" in "".join(outputs):  # the cell runs: save now
            write(project / "shop.py", MODEL.replace("return x * RATE", "return -x"))
            saved = True
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    # The cell saw the save queued and still ran the old code to its end; the next cell runs the new code.
    assert "".join(outputs) == "started\n20 20 True\n"
    out = kernel.run("print(price(10))")
    assert out.stdout.splitlines()[-1] == "-10" and out.stdout.startswith("hotswap: shop: "), out


def test_profile_config_loads_the_extension(tmp_path: Path, project: Path):
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    config = 'c.InteractiveShellApp.extensions = ["hotswap"]\n'
    (profile / "ipython_kernel_config.py").write_text(config)
    write(project / "shop.py", MODEL)
    k = Kernel(tmp_path, project)
    try:
        assert kernel_status(k).startswith("hotswap: on, mode changed")
        k.run("from shop import price")
        write(project / "shop.py", MODEL.replace("return x * RATE", "return x * RATE * 3"))
        k.wait_pending("shop")
        assert k.run("print(price(10))").stdout.splitlines()[-1] == "60"
    finally:
        k.close()


def kernel_status(k: Kernel) -> str:
    return k.run("%hotswap").stdout
