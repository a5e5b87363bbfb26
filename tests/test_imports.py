"""The import scanner: the native walk directly, then `hotswap.scan_imports` (fallback parser, classification)."""

from __future__ import annotations

import sys

import pytest
from proc_helpers import write

import hotswap
from hotswap import _native
from hotswap.imports import classify


def sites(source: str, package: str = ""):
    return [(s.module, s.name, s.lineno, s.type_checking_only) for s in _native.scan_source_imports(source, "<t>",
                                                                                                    package)]


def test_native_scan_finds_nested_imports_with_lines():
    source = (
        "import a\n"
        "try:\n    import b\nexcept ImportError:\n    from c import d\n"
        "with x:\n    import e\n"
        "for i in y:\n    import f\n"
        "match z:\n    case 1:\n        import g\n"
        "def fn():\n    import h\n"
        "class C:\n    import i\n"
    )
    assert sites(source) == [
        ("a", None, 1, False), ("b", None, 3, False), ("c", "d", 5, False), ("e", None, 7, False),
        ("f", None, 9, False), ("g", None, 12, False), ("h", None, 14, False), ("i", None, 16, False),
    ]


def test_native_scan_resolves_relative_imports_and_marks_type_checking():
    source = "from . import a\nfrom ..b import c\nimport typing\nif typing.TYPE_CHECKING:\n    import d\n"
    assert sites(source, "pkg.sub") == [
        ("pkg.sub", "a", 1, False), ("pkg.b", "c", 2, False), ("typing", None, 3, False), ("d", None, 5, True),
    ]
    assert sites("from ... import x\n", "pkg")[0][0] == "...", "an import above the top stays unresolved"


def test_native_scan_rejects_what_rustpython_cannot_parse():
    with pytest.raises(SyntaxError, match="line 2"):
        _native.scan_source_imports('import a\nx = f"{d["a"]}"\n')


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project (first-party package `proj_app`) and a site directory of third-party-like packages."""
    site = tmp_path / "site"
    write(site / "thirdlib" / "__init__.py", "X = 1\n")
    write(site / "typelib" / "__init__.py", "X = 1\n")
    write(site / "proj_app_extra" / "__init__.py", "X = 1\n")  # shares a name prefix with the project
    root = tmp_path / "proj"
    write(root / "proj_app" / "__init__.py", "from . import models\n")
    write(root / "proj_app" / "models.py", """\
        import json
        import thirdlib
        import proj_app_extra
        from .util import helper
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import typelib
        def f():
            import not_installed_anywhere_xyz
    """)
    write(root / "proj_app" / "util.py", "def helper():\n    pass\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(root))
    return root


def test_scan_classifies_by_where_find_spec_finds_the_module(project):
    scan = hotswap.scan_imports(project / "proj_app")
    kinds = {(r.module, r.name): r.kind for r in scan.imports}
    assert kinds[("json", None)] == "stdlib"
    assert kinds[("thirdlib", None)] == "third_party"
    assert kinds[("proj_app_extra", None)] == "third_party"
    assert kinds[("proj_app.util", "helper")] == "first_party"
    assert kinds[("proj_app", "models")] == "first_party"
    assert kinds[("not_installed_anywhere_xyz", None)] == "missing"
    assert scan.third_party == ("proj_app_extra", "thirdlib")
    assert scan.skipped == ()
    lines = {r.module: r.lineno for r in scan.imports if r.file.endswith("models.py")}
    assert lines["typelib"] == 7 and lines["not_installed_anywhere_xyz"] == 9


def test_type_checking_imports_are_listed_but_not_preloaded(project):
    scan = hotswap.scan_imports(project)
    (typelib,) = [r for r in scan.imports if r.module == "typelib"]
    assert typelib.type_checking_only and typelib.kind == "third_party"
    assert "typelib" not in scan.third_party
    assert "typelib" in scan.modules("third_party", include_type_checking=True)


def test_scan_accepts_an_importable_package_name_without_importing_it(project):
    scan = hotswap.scan_imports("proj_app")
    assert "proj_app" not in sys.modules
    assert scan.third_party == ("proj_app_extra", "thirdlib")


def test_first_party_is_decided_by_origin_not_by_name(project, tmp_path):
    # The same top-level name is first-party when it resolves inside the scanned tree, third-party otherwise.
    assert classify("thirdlib.sub", [str(project)]) == "third_party"
    assert classify("thirdlib.sub", [str(tmp_path / "site")]) == "first_party"
    assert classify("proj_app", [str(tmp_path / "site")]) == "third_party"


def test_files_rustpython_rejects_fall_back_to_cpython_ast_and_bad_files_are_skipped(project):
    write(project / "proj_app" / "new_syntax.py", 'import thirdlib\nd = {"a": 1}\nmsg = f"{d["a"]}"\n')
    write(project / "proj_app" / "broken.py", "import thirdlib\ndef (:\n")
    scan = hotswap.scan_imports(project / "proj_app")
    skipped = dict(scan.skipped)
    broken = [f for f in skipped if f.endswith("broken.py")]
    assert len(broken) == 1 and "rustpython-parser" in skipped[broken[0]] and "CPython ast" in skipped[broken[0]]
    from_new = [r for r in scan.imports if r.file.endswith("new_syntax.py")]
    if sys.version_info >= (3, 12):
        assert [(r.module, r.lineno, r.kind) for r in from_new] == [("thirdlib", 1, "third_party")]
        assert not any(f.endswith("new_syntax.py") for f in skipped)
    else:  # neither parser accepts it before 3.12: reported, not fatal
        assert from_new == []
        assert any(f.endswith("new_syntax.py") for f in skipped)
    assert scan.third_party == ("proj_app_extra", "thirdlib"), "the other files were still scanned"


def test_rescan_sees_edits(project):
    models = project / "proj_app" / "models.py"
    before = hotswap.scan_imports(project)
    again = hotswap.scan_imports(project)
    assert again == before
    models.write_text(models.read_text() + "import typelib\n")
    after = hotswap.scan_imports(project)
    assert after.third_party == ("proj_app_extra", "thirdlib", "typelib")


def test_scan_of_a_missing_target_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a file"):
        hotswap.scan_imports(str(tmp_path / "nope"))
