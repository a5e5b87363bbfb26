"""The code -> functions index: closures and nested functions found without sweeping the heap."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import types
import weakref

import pytest

from conftest import warm
from hotswap import _native

FACTORY = """
    def make(n):
        def add(x):
            return x + n
        return add
"""


def _swept(code):
    """What a full heap sweep finds for ``code``: the reference answer."""
    return {id(f) for f in gc.get_objects() if type(f) is types.FunctionType and f.__code__ is code}


def _inner_code(outer):
    return next(c for c in outer.__code__.co_consts if isinstance(c, types.CodeType))


def _factory():
    ns: dict = {}
    exec(textwrap.dedent(FACTORY), ns)
    return ns["make"]


def test_finds_exactly_the_live_closures_young_and_old():
    make = _factory()
    code = _inner_code(make)
    old = [make(i) for i in range(50)]
    gc.collect()  # these leave the youngest generation
    young = [make(i) for i in range(50, 60)]  # these are still in it
    dead = make(-1)
    del dead
    found = _native.find_functions([code])
    assert _native.function_index_mode() == ("watcher" if sys.version_info >= (3, 12) else "gc")
    assert {id(f) for f in found[0]} == _swept(code) == {id(f) for f in old + young}
    assert len(found[0]) == 60


def test_dead_functions_are_not_kept_alive():
    make = _factory()
    code = _inner_code(make)
    add = make(1)
    _native.find_functions([code])  # the index is running and knows `add`
    gc.collect()
    ref = weakref.ref(add)
    del add
    gc.collect()
    assert ref() is None
    assert _native.find_functions([code]) == [[]]


def test_functions_of_comprehensions_are_never_searched():
    ns: dict = {}
    exec("def f(xs):\n    return [x for x in xs], list(x for x in xs)\n", ns)
    codes = [c for c in ns["f"].__code__.co_consts if isinstance(c, types.CodeType)]
    assert codes and all(c.co_name in ("<listcomp>", "<genexpr>") for c in codes)
    assert _native.find_functions(codes) == [[] for _ in codes]


def test_code_changed_by_a_reload_moves_in_the_index(modules):
    m = modules.load(FACTORY)
    add2 = m.make(2)
    gc.collect()
    warm(add2, 1)
    for k in range(2, 5):  # every reload must find the closure under the code the previous one gave it
        report = modules.edit(m, FACTORY.replace("return x + n", f"return x * n + {k}"))
        assert report.ok, report.error
        assert add2(5) == 10 + k
        assert m.make(3)(5) == 15 + k
        gc.collect()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="only the 3.12+ function watcher sees a __code__ set by others")
def test_code_changed_elsewhere_moves_in_the_index():
    make = _factory()
    other = _factory()
    code, other_code = _inner_code(make), _inner_code(other)
    add = make(1)
    gc.collect()
    _native.find_functions([code])
    add.__code__ = other_code
    found = _native.find_functions([code, other_code])
    assert add not in found[0]
    assert [f for f in found[1] if f is add] == [add]


def test_closures_made_before_and_after_import_hotswap_are_patched(tmp_path):
    """In a fresh interpreter: a closure made before hotswap is imported (before the index exists), one made
    after, and one made after the first reload are all patched by each reload."""
    (tmp_path / "fac.py").write_text(textwrap.dedent(FACTORY))
    script = textwrap.dedent(f"""
        import gc, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import fac
        before = fac.make(1)
        gc.collect()
        import hotswap
        from pathlib import Path
        after = fac.make(2)
        path = Path(fac.__file__)
        path.write_text(path.read_text().replace("return x + n", "return x * n"))
        report = hotswap.reload(fac)
        assert report.ok, report.error
        later = fac.make(3)
        gc.collect()
        assert (before(5), after(5), later(5)) == (5, 10, 15)
        path.write_text(path.read_text().replace("return x * n", "return x - n"))
        assert hotswap.reload(fac).ok
        assert (before(5), after(5), later(5)) == (4, 3, 2)
        print("ok", hotswap._native.function_index_mode())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "watcher" if sys.version_info >= (3, 12) else "gc"]


def test_overwritten_singledispatch_registrations_are_found_without_a_heap_search(modules, monkeypatch):
    """A `def _` that the next `def _` overwrote lives only in the registry its decorator names, in this module
    or in another one: the reload finds it there, never by searching the heap."""
    modules.load('''
        import functools

        @functools.singledispatch
        def to_text(x):
            return "any"
    ''', name="dispatch_lib")
    src = """
        import functools
        import dispatch_lib

        @functools.singledispatch
        def show(x):
            return "any"

        @show.register
        def _(x: int):
            return "int"

        @show.register(str)
        def _(x):
            return "str"

        @dispatch_lib.to_text.register
        def _(x: float):
            return "float"

        @dispatch_lib.to_text.register
        def _(x: bytes):
            return "bytes"
    """
    m = modules.load(src)
    show, to_text = m.show, m.dispatch_lib.to_text
    int_handler, float_handler = show.dispatch(int), to_text.dispatch(float)

    def heap_search(*args):
        raise AssertionError(f"searched the heap for {args}")

    monkeypatch.setattr(_native, "find_defined_function", heap_search)
    report = modules.edit(m, src.replace('return "int"', 'return "INT"').replace('return "float"', 'return "FLOAT"'))
    assert report.ok, report.error
    assert (show(1), show("a"), to_text(1.5), to_text(b"")) == ("INT", "str", "FLOAT", "bytes")
    assert show.dispatch(int) is int_handler and to_text.dispatch(float) is float_handler
    assert int_handler(0) == "INT" and float_handler(0.0) == "FLOAT"
