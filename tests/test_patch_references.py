"""No reference is orphaned: every function object that came from a definition keeps following its edits."""

from __future__ import annotations

import functools

from conftest import warm

TAGGED = """
    import functools

    def tag(label):
        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                return (label, fn(*args))
            return wrapper
        return deco

    @tag(1)
    def f(x):
        return x + 1
"""


def test_references_from_before_a_decorator_change_follow_later_body_edits(modules):
    m = modules.load(TAGGED)
    old_wrapper = m.f
    old_plain = old_wrapper.__wrapped__
    assert warm(old_wrapper, 1) == (1, 2)
    step1 = TAGGED.replace("@tag(1)", "@tag(2)")
    report = modules.edit(m, step1)
    assert report.ok, report.error
    new_wrapper = m.f
    assert new_wrapper is not old_wrapper and new_wrapper(1) == (2, 2)
    step2 = step1.replace("return x + 1", "return x + 100")
    report = modules.edit(m, step2)
    assert report.ok, report.error
    # The reference taken before the decorator change runs the body saved after it (through its own wrapper).
    assert old_plain(1) == 101 and old_wrapper(1) == (1, 101) and warm(old_wrapper, 1) == (1, 101)
    assert m.f(1) == (2, 101) and new_wrapper(1) == (2, 101)
    fresh = modules.load(step2)
    assert m.f(1) == fresh.f(1)


def test_module_level_lambda_is_patched_in_place(modules):
    src = """
        scale = lambda x: x * 2
        handlers = [scale]
    """
    m = modules.load(src)
    scale = m.scale
    assert warm(scale, 3) == 6
    report = modules.edit(m, src.replace("x * 2", "x * 3"))
    assert report.ok, report.error
    assert m.scale is scale and scale(3) == 9 and m.handlers[0](3) == 9 and warm(scale, 3) == 9
    assert "scale" in report.patched


def test_lru_cache_under_classmethod_and_staticmethod_is_cleared(modules):
    src = """
        import functools

        class C:
            @classmethod
            @functools.lru_cache(maxsize=None)
            def k(cls):
                return 1

            @staticmethod
            @functools.lru_cache(maxsize=None)
            def s():
                return 1
    """
    m = modules.load(src)
    C = m.C
    k, s = C.k, C.s
    assert (k(), s()) == (1, 1)
    report = modules.edit(m, src.replace("return 1", "return 2"))
    assert report.ok, report.error
    assert (k(), s(), C.k(), C.s()) == (2, 2, 2, 2)


def test_wraps_wrapper_takes_the_new_metadata_of_the_wrapped_function(modules):
    src = """
        import contextlib

        @contextlib.contextmanager
        def opened(name):
            \"\"\"Old doc.\"\"\"
            yield name
    """
    m = modules.load(src)
    opened = m.opened
    report = modules.edit(m, src.replace("Old doc.", "New doc.").replace("yield name", "yield name.upper()"))
    assert report.ok, report.error
    with opened("a") as value:
        assert value == "A"
    assert opened.__doc__ == "New doc." == opened.__wrapped__.__doc__


def test_functools_partial_of_a_patched_function_follows(modules):
    src = """
        def f(a, b):
            return a + b
    """
    m = modules.load(src)
    p = functools.partial(m.f, 1)
    modules.edit(m, src.replace("a + b", "a * b"))
    assert p(5) == 5
