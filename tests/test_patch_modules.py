"""What re-runs: statements that update a rebound name, class attributes computed from module constants, other
modules' ``from m import X`` (rule 2 across modules), and ``__main__``'s top-level statements.

Every test takes references before the edit and compares the live modules with a fresh import of the new
sources, made in a separate interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import hotswap
from conftest import warm
from hotswap import AutoReloader


def fresh(root: Path, module: str, expression: str):
    """The value of ``expression`` (JSON-able) after a fresh import of ``module`` from ``root`` in a new
    interpreter, the module's namespace being the expression's globals."""
    script = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        f"m = importlib.import_module({module!r})\n"
        f"print(json.dumps(eval({expression!r}, vars(m))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_statements_updating_a_rebound_name_run_again(modules):
    before = textwrap.dedent("""\
        ITEMS = [1]
        ITEMS += [2]
        TABLE = {}
        TABLE["k"] = len(ITEMS)
        class Box:
            pass
        BOX = Box()
        BOX.size = len(ITEMS) * 10
        TEMP = 1
        del TEMP
        RATE = 2
        class Price:
            unit = RATE * 10
            def total(self, n):
                return self.unit * n
        """)
    m = modules.load(before)
    price = m.Price()
    total = price.total
    box = m.BOX
    warm(total, 1)
    after = (before.replace("ITEMS = [1]", "ITEMS = [1, 5]").replace("TABLE = {}", "TABLE = {'z': 0}")
             .replace("TEMP = 1", "TEMP = 2").replace("RATE = 2", "RATE = 3"))
    report = modules.edit(m, after)
    assert report.ok, report.error
    expr = "[ITEMS, TABLE, BOX.size, 'TEMP' in globals(), Price.unit, Price().total(2)]"
    assert eval(expr, vars(m)) == fresh(modules.root, m.__name__, expr)
    # The class kept its identity: the instance and bound method taken before see the new class attribute.
    assert isinstance(price, m.Price) and total(2) == m.Price().total(2)
    assert box is m.BOX  # `BOX = Box()` reads no rebound name: the object survives, its attribute was updated


def two_modules(modules, lib_src: str, user_src: str):
    lib_name = f"lib_{uuid.uuid4().hex[:8]}"
    lib = modules.load(lib_src, lib_name)
    user = modules.load(user_src.replace("LIB", lib_name))
    return lib, user


def test_from_import_follows_a_rebound_constant_and_its_readers_run(modules):
    lib_src = "LIMIT = 10\ndef helper():\n    return 'h1'\n"
    user_src = textwrap.dedent("""\
        from LIB import LIMIT, helper
        DOUBLE = LIMIT * 2
        def allowed(n, cap=LIMIT):
            return n <= cap
        def double():
            return DOUBLE
        class Gate:
            top = LIMIT + 1
        """)
    lib, user = two_modules(modules, lib_src, user_src)
    allowed, double, gate, helper = user.allowed, user.double, user.Gate(), user.helper
    warm(allowed, 15)
    report = modules.edit(lib, lib_src.replace("LIMIT = 10", "LIMIT = 20").replace("'h1'", "'h2'"))
    assert report.ok, report.error
    assert report.rebound == (f"{user.__name__}.LIMIT",)
    assert [d.module for d in report.dependents] == [user.__name__] and report.dependents[0].ok
    assert "rebound 1 in" in report.summary()
    expr = "[LIMIT, DOUBLE, allowed(15), double(), Gate.top, helper()]"
    assert eval(expr, vars(user)) == fresh(modules.root, user.__name__, expr)
    # References taken before the edit follow.
    assert (allowed(15), double(), gate.top, helper()) == (True, 40, 21, "h2")
    assert user.allowed is allowed and user.helper is helper and user.Gate is type(gate)


def test_a_name_rebound_since_the_import_or_taken_another_way_is_left_alone(modules):
    lib_src = "LIMIT = 10\nOTHER = 1\n"
    user_src = textwrap.dedent("""\
        from LIB import LIMIT, OTHER
        import LIB
        LIMIT = 99
        COPY = LIB.OTHER
        """)
    lib, user = two_modules(modules, lib_src, user_src)
    report = modules.edit(lib, "LIMIT = 11\nOTHER = 2\n")
    assert report.ok and report.rebound == (f"{user.__name__}.OTHER",)
    expr = "[LIMIT, OTHER]"
    assert eval(expr, vars(user)) == fresh(modules.root, user.__name__, expr) == [99, 2]
    # `import LIB` then `COPY = LIB.OTHER` never names the import: a fresh import would give 2, hotswap keeps 1.
    assert user.COPY == 1


def test_relative_and_aliased_imports_follow_through_a_package(modules):
    pkg = f"pkg_{uuid.uuid4().hex[:8]}"
    modules.write(f"{pkg}.__init__", "from .core import Settings as Config, VERSION\n")
    modules.write(f"{pkg}.core", "VERSION = (1, 0)\nclass Settings:\n    debug = False\n")
    app_src = f"from {pkg} import VERSION, Config\nLABEL = 'v%d.%d' % VERSION\n"
    app = modules.load(app_src)
    modules.names.extend([pkg, f"{pkg}.core"])
    core = sys.modules[f"{pkg}.core"]
    package = sys.modules[pkg]
    config = app.Config
    report = modules.edit(core, "VERSION = (2, 1)\nclass Settings:\n    debug = True\n")
    assert report.ok, report.error
    assert sorted(report.rebound) == [f"{app.__name__}.VERSION", f"{pkg}.VERSION"]
    expr = "[list(VERSION), LABEL, Config.debug]"
    assert eval(expr, vars(app)) == fresh(modules.root, app.__name__, expr) == [[2, 1], "v2.1", True]
    assert app.Config is config is package.Config and config.debug is True


def test_star_imports_follow_what_the_module_exports_now(modules):
    lib_src = "LIMIT = 10\ndef helper():\n    return 1\ndef gone():\n    pass\n"
    user_src = "from LIB import *\nTOTAL = LIMIT + helper()\n"
    lib, user = two_modules(modules, lib_src, user_src)
    helper = user.helper
    report = modules.edit(lib, "LIMIT = 20\nNEW = 2\ndef helper():\n    return 2\n")
    assert report.ok, report.error
    assert sorted(report.rebound) == [f"{user.__name__}.{n}" for n in ("LIMIT", "NEW", "gone")]
    expr = "[LIMIT, NEW, TOTAL, helper(), 'gone' in globals()]"
    assert eval(expr, vars(user)) == fresh(modules.root, user.__name__, expr) == [20, 2, 22, 2, False]
    assert user.helper is helper


def test_a_dependent_whose_statements_fail_keeps_its_old_imports(modules):
    lib_src = "LIMIT = 10\n"
    user_src = "from LIB import LIMIT\nRATIO = 100 // (LIMIT - 20)\n"
    lib, user = two_modules(modules, lib_src, user_src)
    report = modules.edit(lib, "LIMIT = 20\n")
    assert report.ok and lib.LIMIT == 20
    assert report.rebound == ()
    (failed,) = report.dependents
    assert not failed.ok and "ZeroDivisionError" in failed.error and f"{user.__name__}.py" in failed.error
    assert "failed in" in report.summary()
    assert (user.LIMIT, user.RATIO) == (10, -10)


def test_a_redecorated_function_is_rebound_where_it_was_imported(modules):
    lib_src = textwrap.dedent("""\
        import functools
        def tag(label):
            def deco(fn):
                @functools.wraps(fn)
                def wrapper():
                    return label + ':' + fn()
                return wrapper
            return deco
        @tag('a')
        def greet():
            return 'hi'
        """)
    user_src = "from LIB import greet\nHANDLERS = {'greet': greet}\n"
    lib, user = two_modules(modules, lib_src, user_src)
    report = modules.edit(lib, lib_src.replace("@tag('a')", "@tag('b')"))
    assert report.ok, report.error
    assert report.rebound == (f"{user.__name__}.greet",)
    expr = "[greet(), HANDLERS['greet']()]"
    assert eval(expr, vars(user)) == fresh(modules.root, user.__name__, expr) == ["b:hi", "b:hi"]


def test_an_unchanged_function_edit_rebinds_nothing(modules):
    lib, user = two_modules(modules, "def f():\n    return 1\n", "from LIB import f\nG = f\n")
    f = user.f
    report = modules.edit(lib, "def f():\n    return 2\n")
    assert report.ok and report.rebound == () and report.dependents == ()
    assert f() == 2 and user.G is f


def test_autoreloader_batches_follow_imports(modules):
    lib_src = "LIMIT = 10\n"
    user_src = "from LIB import LIMIT\nDOUBLE = LIMIT * 2\ndef double():\n    return DOUBLE\n"
    lib, user = two_modules(modules, lib_src, user_src)
    double = user.double
    with AutoReloader(str(modules.root), debounce_ms=20) as reloader:
        modules.write(lib.__name__, "LIMIT = 30\n")
        report = reloader.wait_for_reload(timeout=5)
    assert report is not None and report.ok and report.module == lib.__name__, report
    assert report.rebound == (f"{user.__name__}.LIMIT",)
    assert double() == fresh(modules.root, user.__name__, "double()") == 60


def test_autoreloader_batch_saving_both_modules_applies_both(modules):
    lib_src = "LIMIT = 10\n"
    user_src = "from LIB import LIMIT\nDOUBLE = LIMIT * 2\ndef double():\n    return DOUBLE\n"
    lib, user = two_modules(modules, lib_src, user_src)
    double = user.double
    new_user = user_src.replace("LIB", lib.__name__) + "def triple():\n    return LIMIT * 3\n"
    with AutoReloader(str(modules.root), debounce_ms=200) as reloader:
        modules.write(lib.__name__, "LIMIT = 30\n")
        modules.write(user.__name__, new_user)
        reports = [reloader.wait_for_reload(timeout=5) for _ in range(2)]
    assert [r.module for r in reports if r] == [lib.__name__, user.__name__] and all(r.ok for r in reports)
    expr = "[double(), triple(), LIMIT]"
    assert eval(expr, vars(user)) == fresh(modules.root, user.__name__, expr) == [60, 90, 30]
    assert user.double is double


def test_main_reports_a_changed_top_level_statement_as_needing_a_restart(modules, monkeypatch):
    src = textwrap.dedent("""\
        def step():
            return 1
        ticks = []
        while len(ticks) < 3:
            ticks.append(step())
        """)
    main, path = modules.run_as_main("fake_main_loop", src, monkeypatch)
    step = main.step
    path.write_text(src.replace("return 1", "return 2").replace("< 3", "< 5"))
    report = hotswap.reload(main)
    assert report.ok, report.error
    assert report.needs_restart is not None and "line 4 of __main__" in report.needs_restart
    assert "while len(ticks) < 5" in report.needs_restart
    assert step() == 2 and report.patched == ("step",)
    assert main.ticks == [1, 1, 1]  # the loop did not run again
    # A definition-only edit of __main__ needs no restart.
    path.write_text(src.replace("return 1", "return 3").replace("< 3", "< 5"))
    report = hotswap.reload(main)
    assert report.ok and report.needs_restart is None and step() == 3


def test_future_imports_that_are_always_on_leave_code_flags_as_an_import_does(modules):
    src = "from __future__ import print_function, division, annotations\ndef f(x: int):\n    return x / 2\n"
    m = modules.load(src)
    f = m.f
    report = modules.edit(m, src.replace("x / 2", "x / 4"))
    assert report.ok, report.error
    expr = "[f.__code__.co_flags, f.__annotations__, f(8)]"
    assert eval(expr, vars(m)) == fresh(modules.root, m.__name__, expr)
    assert f(8) == 2.0


@pytest.mark.parametrize("entry", ["symlink", "unnormalised"])
def test_a_module_imported_through_a_symlink_or_an_unnormalised_path_is_patched_in_place(tmp_path, monkeypatch,
                                                                                          entry):
    """The module's code objects carry the file name its import used (a symlinked directory, `dir/./m.py`), which
    is not the resolved path the reload reads: its functions are still recognised as its own and patched, so
    references taken before the edit run the new code (not left behind by a new function)."""
    real = tmp_path / "real"
    real.mkdir()
    if entry == "symlink":
        (tmp_path / "link").symlink_to(real)
        sys_path_entry = str(tmp_path / "link")
    else:
        sys_path_entry = str(real) + "/."
    name = f"mod_{uuid.uuid4().hex[:10]}"
    source = 'def f(x, *, k=1):\n    return ("A", x + k)\n\nclass C:\n    def m(self):\n        return "A"\n'
    (real / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(sys_path_entry)
    try:
        module = __import__(name)
        f, method = module.f, module.C().m
        assert module.f.__code__.co_filename != str((real / f"{name}.py").resolve())
        (real / f"{name}.py").write_text(source.replace('"A", x + k', '"B", x + k').replace("k=1", "k=2")
                                         .replace('return "A"', 'return "B"'))
        report = hotswap.reload(module)
        assert report.ok, report.error
        assert report.executed == 0 and set(report.patched) >= {"f", "C.m"}, report
        assert module.f is f and f(1) == ("B", 3) and method() == "B"
    finally:
        sys.modules.pop(name, None)
