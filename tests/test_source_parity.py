"""The two statement splitters agree: rustpython-parser (src/stmts.rs) and the CPython-ast fallback
(hotswap/_source.py, used where rustpython-parser rejects valid source) give equal statements for every module
of the standard library, in every field the engine reads."""

from __future__ import annotations

import ast
import sysconfig
from pathlib import Path

from hotswap import _native, _source

FIELDS = ("kind", "name", "text", "lineno", "end_lineno", "def_lineno", "def_text", "decorators", "binds", "reads",
          "calls_reloading", "defaults")


def _fields(stmt) -> tuple:
    values = tuple(getattr(stmt, field) for field in FIELDS)
    return values + (tuple(_fields(member) for member in stmt.members),)


def _first_difference(native, fallback, where: str):
    for field, a, b in zip(FIELDS + ("members",), _fields(native), _fields(fallback)):
        if a != b:
            if field == "members":
                for x, y in zip(native.members, fallback.members):
                    found = _first_difference(x, y, f"{where} > {x.name or x.lineno}")
                    if found:
                        return found
                return f"{where}: {len(native.members)} members != {len(fallback.members)}"
            return f"{where}: {field}: {a!r} != {b!r}"
    return None


def _stdlib_modules():
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))
    for package in sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        if package.name in ("test", "idlelib", "lib2to3", "site-packages", "tkinter", "turtledemo"):
            continue
        files += sorted(package.rglob("*.py"))
    return [f for f in files if "test" not in f.relative_to(root).parts[:-1]]


def test_both_splitters_agree_on_the_standard_library():
    compared, rejected, differences = 0, [], []
    for path in _stdlib_modules():
        try:
            text = _source.decode(path.read_bytes())
            tree = ast.parse(text, str(path))
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue  # not valid on this interpreter (lib2to3 test data and the like)
        try:
            native = _native.split_statements(text, str(path))
        except SyntaxError:
            rejected.append(path.name)  # newer syntax than rustpython-parser knows: the fallback's job
            continue
        lines = _source.source_lines(text)
        fallback = [_source._describe(node, text, lines) for node in tree.body]
        compared += 1
        if len(native) != len(fallback):
            differences.append(f"{path}: {len(native)} statements != {len(fallback)}")
            continue
        for a, b in zip(native, fallback):
            found = _first_difference(a, b, f"{path}:{a.lineno}")
            if found:
                differences.append(found)
    assert compared > 200, (compared, rejected)
    assert not differences, f"{len(differences)} differences, first ones:\n" + "\n".join(differences[:15])
