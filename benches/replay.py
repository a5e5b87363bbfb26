"""Replays real release history through the reloaders and compares each live module with a fresh import.

For each package below, the sdists of consecutive releases are downloaded with pip (cached under
benches/.cache/, never committed). For each release-to-release step and each tool, a worker process imports
every module of the old release from a scratch directory, takes references to every function and class (and to
each class's functions), writes the new release over it, and reloads every changed module with the tool, in
import order. Another process imports the new release fresh (with hotswap imported first, as the replayed program
has it, so the same framework integrations are active; all workers share one string hash seed). The two are
compared, module by module: function code (bytecode, constants, names, first line), defaults, class members,
module-level names and simple constants, and the references taken before the edit (each must now behave as the
fresh import's object of the same name; a reference hotswap turned into a forwarder is compared as what it
calls). Each changed module is then:

- exact: everything matches the fresh import;
- refused: hotswap's report failed (the module is checked to be exactly as before) or said a restart is needed,
  or another tool raised and left the module as it was;
- mismatch: anything else (the details of hotswap's are printed below the table).

Run with `make replay` (it installs the comparison tools into benches/.venv). Not part of `make bench`: it
downloads. Usage: ``python benches/replay.py [--tools hotswap,jurigged] [--packages attrs,click]``.
"""

from __future__ import annotations

import argparse
import dis
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"

# (distribution, import packages, consecutive releases). Pure-Python, no runtime dependencies.
PACKAGES: List[Tuple[str, Tuple[str, ...], Tuple[str, ...]]] = [
    ("attrs", ("attr", "attrs"), ("22.2.0", "23.1.0", "23.2.0", "24.1.0", "24.2.0", "24.3.0", "25.1.0", "25.3.0")),
    ("click", ("click",), ("8.1.0", "8.1.1", "8.1.2", "8.1.3", "8.1.4", "8.1.5", "8.1.6", "8.1.7", "8.1.8")),
    ("more-itertools", ("more_itertools",), ("9.1.0", "10.0.0", "10.1.0", "10.2.0", "10.3.0", "10.4.0", "10.5.0")),
    ("boltons", ("boltons",), ("23.0.0", "23.1.0", "23.1.1", "24.0.0", "24.1.0", "25.0.0")),
    ("packaging", ("packaging",), ("23.0", "23.1", "23.2", "24.0", "24.1", "24.2")),
]
TOOLS = ("hotswap", "jurigged", "IPython deduperreload")


# --- downloading ------------------------------------------------------------------------------------------------

def sdist(dist: str, version: str) -> Path:
    """The release's sdist, downloaded once with pip into the cache."""
    folder = CACHE / "sdists" / dist / version
    found = sorted(p for p in folder.glob("*") if p.suffix in (".gz", ".zip")) if folder.exists() else []
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        print(f"(downloading {dist}=={version})", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", dist,
                        f"{dist}=={version}", "-d", str(folder)], check=True)
        found = sorted(p for p in folder.glob("*") if p.suffix in (".gz", ".zip"))
    return found[0]


def source_tree(dist: str, version: str, packages: Tuple[str, ...]) -> Path:
    """A directory holding the release's import packages (extracted from the sdist once)."""
    out = CACHE / "src" / dist / version
    if (out / ".done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = sdist(dist, version)
        if archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data") if hasattr(tarfile, "data_filter") else tf.extractall(tmp)
        for package in packages:
            candidates = sorted(Path(tmp).rglob(f"{package}/__init__.py"), key=lambda p: len(p.parts))
            if candidates:
                shutil.copytree(candidates[0].parent, out / package)
    (out / ".done").touch()
    return out


def module_files(tree: Path) -> Dict[str, Path]:
    """Module name -> file, for every .py under the tree's packages (tests left out)."""
    out = {}
    for path in sorted(tree.rglob("*.py")):
        rel = path.relative_to(tree).with_suffix("")
        parts = list(rel.parts)
        if any(p in ("tests", "test") for p in parts):
            continue
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


# --- what a module looks like, as plain data ----------------------------------------------------------------------

SIMPLE = (int, float, complex, str, bytes, bool, type(None))


def value_digest(value: Any, depth: int = 0) -> Any:
    if isinstance(value, SIMPLE):
        return repr(value)
    if isinstance(value, (tuple, frozenset)) and depth < 3:
        items = [value_digest(v, depth + 1) for v in value]
        return [type(value).__name__, sorted(map(str, items)) if isinstance(value, frozenset) else items]
    if isinstance(value, types.FunctionType):
        return ["function", code_digest(value.__code__), value_digest(value.__defaults__, depth + 1),
                value_digest(tuple(sorted((value.__kwdefaults__ or {}).items())), depth + 1)]
    if isinstance(value, (staticmethod, classmethod)):
        return [type(value).__name__, value_digest(value.__func__, depth + 1)]
    if isinstance(value, property):
        return ["property"] + [value_digest(f, depth + 1) for f in (value.fget, value.fset, value.fdel)]
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__]
    if isinstance(value, type):
        return ["class", value.__module__, value.__qualname__]
    return ["object", type(value).__qualname__]


def instructions(code: types.CodeType) -> str:
    """The bytecode as operations and their names or constants. Normalised: CPython 3.11+ compiles
    ``module.f()`` differently when the same compile also saw ``import module`` (a plain attribute load instead
    of a method load), which a definition compiled on its own never does; the two run alike. Jump targets are
    left out (they move with that difference)."""
    out = []
    for ins in dis.get_instructions(code):
        name = ins.opname
        if name in ("PUSH_NULL", "CACHE", "PRECALL", "NOP", "EXTENDED_ARG"):
            continue  # EXTENDED_ARG only encodes a large argument (a jump that moved with that difference)
        if name == "LOAD_METHOD":
            name = "LOAD_ATTR"
        arg = "" if ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs or isinstance(ins.argval, types.CodeType) \
            else const_repr(ins.argval).replace("NULL + ", "").replace(" + NULL|self", "").replace(" + NULL", "")
        out.append(f"{name} {arg}")
    return "\n".join(out)


def const_repr(value: Any) -> str:
    """A constant's repr, with a frozenset's items sorted (their order follows the process's string hashes)."""
    if isinstance(value, frozenset):
        return "frozenset({" + ", ".join(sorted(map(const_repr, value))) + "})"
    return repr(value)


def code_digest(code: types.CodeType) -> str:
    parts = [instructions(code), repr(code.co_names), repr(code.co_varnames), repr(code.co_freevars),
             repr(code.co_cellvars), repr((code.co_argcount, code.co_kwonlyargcount, code.co_flags)),
             repr(code.co_firstlineno), getattr(code, "co_qualname", code.co_name)]
    for const in code.co_consts:
        parts.append(code_digest(const) if isinstance(const, types.CodeType) else const_repr(const))
    return hashlib.sha1("\x00".join(p if isinstance(p, str) else p.hex() for p in parts).encode()).hexdigest()[:16]


CLASS_SKIP = {"__dict__", "__weakref__", "__module__", "_abc_impl", "__slots__", "__parameters__",
              "__orig_bases__", "__static_attributes__", "__firstlineno__"}


def class_digest(cls: type) -> Dict[str, Any]:
    return {key: value_digest(value) for key, value in cls.__dict__.items() if key not in CLASS_SKIP}


def module_digest(module: types.ModuleType) -> Dict[str, Any]:
    out = {}
    for name, value in vars(module).items():
        if name.startswith("__") and name not in ("__all__", "__doc__"):
            continue
        if isinstance(value, type) and value.__module__ == module.__name__:
            out[name] = ["class", class_digest(value)]
        else:
            out[name] = value_digest(value)
    return out


def references(modules: Dict[str, types.ModuleType]) -> Dict[str, Any]:
    """Every function and class defined by the modules, and each class's functions, by "module:qualname"."""
    refs: Dict[str, Any] = {}
    for mod_name, module in modules.items():
        for name, value in list(vars(module).items()):
            if isinstance(value, types.FunctionType) and value.__module__ == mod_name:
                refs[f"{mod_name}:{name}"] = value
            elif isinstance(value, type) and value.__module__ == mod_name and value.__qualname__ == name:
                refs[f"{mod_name}:{name}"] = value
                for key, member in list(value.__dict__.items()):
                    if isinstance(member, types.FunctionType):
                        refs[f"{mod_name}:{name}.{key}"] = member
    return refs


def reference_digest(obj: Any) -> Any:
    """A reference's digest. A function hotswap turned into a forwarder (decorators were added to its definition:
    it calls the decorated object the name now holds, with that object's attributes) is digested as what it
    calls, which is what a fresh import's name holds."""
    if "hotswap" in sys.modules:
        from hotswap._engine import forwards_to

        target = forwards_to(obj)
        obj = obj if target is None else target
    return ["class", class_digest(obj)] if isinstance(obj, type) else value_digest(obj)


def lookup(modules: Dict[str, types.ModuleType], key: str) -> Any:
    mod_name, qualname = key.split(":")
    obj: Any = modules.get(mod_name)
    for part in qualname.split("."):
        obj = (vars(obj) if isinstance(obj, (type, types.ModuleType)) else {}).get(part) if obj is not None else None
    return obj


# --- the worker processes ---------------------------------------------------------------------------------------

def import_all(tree: Path) -> Dict[str, types.ModuleType]:
    """Imports every module of the tree (in a stable order); those that cannot be imported here are left out."""
    out = {}
    for name in module_files(tree):
        try:
            out[name] = importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - a module for another platform or Python is simply not replayed
            continue
    return out


def fresh_worker(tree: str) -> Dict[str, Any]:
    # The replayed program has hotswap imported before the package, so its framework adapters are active (the
    # click adapter wraps `click.Command.__init__` to track commands): the fresh import has them too.
    import hotswap  # noqa: F401

    sys.path.insert(0, tree)
    modules = import_all(Path(tree))
    found = {key: lookup(modules, key) for key in references(modules)}
    refs = {key: reference_digest(obj) for key, obj in found.items() if obj is not None}
    return {"modules": {name: module_digest(m) for name, m in modules.items()}, "refs": refs}


def make_tool(name: str):
    """Only the tool replayed (importing the others would slow every worker down)."""
    sys.path.insert(0, str(HERE))
    import _tools  # noqa: PLC0415

    factory = {"hotswap": _tools._hotswap, "jurigged": _tools._jurigged,
               "IPython deduperreload": _tools._deduperreload}[name]
    try:
        return factory()
    except ImportError as exc:
        raise SystemExit(f"{name} is not installed (benches/requirements.txt): {exc}") from None


def replay_worker(tool_name: str, old_tree: str, new_tree: str, scratch: str) -> Dict[str, Any]:
    """Imports the old release from ``scratch``, writes the new one over it, reloads what changed."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(old_tree, scratch)
    sys.path.insert(0, scratch)
    import logging

    logging.disable(logging.WARNING)  # tools log every failure; the result says it
    tool = make_tool(tool_name)
    modules = import_all(Path(scratch))
    for module in modules.values():
        tool.prepare(module)
    refs = references(modules)
    old_files = module_files(Path(scratch))
    new_files = module_files(Path(new_tree))
    changed = [name for name in modules
               if name in new_files and new_files[name].read_bytes() != old_files[name].read_bytes()]
    # The same order for every tool: plain modules in dependency order (as hotswap's AutoReloader orders a batch),
    # then packages, innermost first (an __init__ re-exports from its submodules).
    from hotswap.watcher import dependency_order

    plain = [(modules[n], "", new_files[n].read_bytes()) for n in changed if not hasattr(modules[n], "__path__")]
    packages = sorted((n for n in changed if hasattr(modules[n], "__path__")), key=lambda n: -n.count("."))
    changed = [module.__name__ for module, _, _ in dependency_order(plain)] + packages
    before = {name: module_digest(modules[name]) for name in changed}
    for path in new_files.values():  # the new release replaces the old one on disk, as a checkout would
        target = Path(scratch) / path.relative_to(new_tree)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    outcome: Dict[str, Any] = {}
    # Restarts asked for by the reload of a module's statements that another module's reload caused (it rebound
    # names the module imported from it): they are that module's, as the report's `dependents` say.
    restarts: Dict[str, List[str]] = {}
    for name in changed:
        module = modules[name]
        try:
            if tool_name == "hotswap":
                import hotswap

                report = hotswap.reload(module)
                pending = [dependent for dependent in report.dependents]
                while pending:
                    dependent = pending.pop()
                    if dependent.needs_restart:
                        restarts.setdefault(dependent.module, []).append(dependent.needs_restart)
                    pending.extend(dependent.dependents)
                if not report.ok:
                    outcome[name] = ["failed", report.error.strip().splitlines()[-1]]
                elif report.needs_restart or restarts.get(name):
                    outcome[name] = ["restart", "; ".join([report.needs_restart or ""] + restarts.get(name, []))
                                     .strip("; ")]
                else:
                    outcome[name] = ["ok", ""]
            else:
                tool.reload(module)
                outcome[name] = ["ok", ""]
        except BaseException as exc:  # noqa: BLE001 - a tool crashing is a result
            outcome[name] = ["raised", f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1:] or ''}"]
    # Modules new in this release are imported now, as the program would on its next use of them (a package
    # gets them as attributes, as in the fresh import).
    sys.dont_write_bytecode = True
    import_all(Path(scratch))
    after = {name: module_digest(modules[name]) for name in changed}
    ref_digests = {key: reference_digest(obj) for key, obj in refs.items() if key.split(":")[0] in changed}
    return {"changed": changed, "before": before, "after": after, "outcome": outcome, "refs": ref_digests}


def run_worker(args: List[str]) -> Dict[str, Any]:
    # One string hash seed for every worker: what depends on iteration order of sets of strings is alike.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONWARNINGS="ignore", PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, env=env,
                          timeout=900)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- comparing -------------------------------------------------------------------------------------------------

UNSTABLE = "?"


def stable(first: Dict[str, Any], second: Dict[str, Any]) -> Dict[str, Any]:
    """``first`` with every value that differs between two fresh imports (``hash(None)`` before 3.12, ids,
    times) replaced by UNSTABLE, which compares equal to anything."""
    modules = {}
    for mod, names in first["modules"].items():
        other = second["modules"].get(mod, {})
        out = {}
        for name, digest in names.items():
            twin = other.get(name)
            if digest == twin:
                out[name] = digest
            elif digest[0] == "class" and isinstance(digest[1], dict) and twin and isinstance(twin[1], dict):
                out[name] = ["class", {k: v if twin[1].get(k) == v else UNSTABLE for k, v in digest[1].items()}]
            else:
                out[name] = UNSTABLE
        modules[mod] = out
    refs = {k: v if second["refs"].get(k) == v else UNSTABLE for k, v in first["refs"].items()}
    return {"modules": modules, "refs": refs}


def differences(live: Dict[str, Any], fresh: Dict[str, Any]) -> List[str]:
    """What differs between a live module's digest and a fresh import's, one line per name."""
    out = []
    for name in sorted(set(live) | set(fresh)):
        a, b = live.get(name), fresh.get(name)
        if a == b or b == UNSTABLE:
            continue
        if a is None or b is None:
            out.append(f"{name}: {'missing' if a is None else 'left over'}")
        elif a[0] == "class" == b[0] and isinstance(a[1], dict) and isinstance(b[1], dict):
            keys = sorted(k for k in set(a[1]) | set(b[1]) if a[1].get(k) != b[1].get(k) and b[1].get(k) != UNSTABLE)
            if not keys:
                continue
            out.append(f"{name}: class members {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}")
        else:
            out.append(f"{name}: {describe(a)} != fresh {describe(b)}")
    return out


def describe(digest: Any) -> str:
    if isinstance(digest, list) and digest and digest[0] == "function":
        return "function code/defaults"
    text = json.dumps(digest)
    return text if len(text) < 60 else text[:57] + "..."


def classify(result: Dict[str, Any], fresh: Dict[str, Any], module: str) -> Tuple[str, str]:
    outcome, detail = result["outcome"].get(module, ["raised", "no outcome"])
    live, new = result["after"][module], fresh["modules"].get(module)
    if new is None:
        return "refused", "the new release does not import here"
    if outcome in ("failed", "raised"):
        if live == result["before"][module]:
            return "refused", detail
        return "mismatch", f"{detail}, and the module was changed anyway"
    if outcome == "restart":
        return "refused", detail
    diffs = differences(live, new)
    prefix = module + ":"
    for key, digest in result["refs"].items():
        if key.startswith(prefix) and fresh["refs"].get(key, UNSTABLE) not in (UNSTABLE, digest):
            diffs.append(f"reference taken before to {key.split(':')[1]} differs from the fresh one")
    return ("exact", "") if not diffs else ("mismatch", "; ".join(diffs[:4]) + (" ..." if len(diffs) > 4 else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--packages", default=",".join(p[0] for p in PACKAGES))
    args = parser.parse_args()
    tools = args.tools.split(",")
    chosen = [p for p in PACKAGES if p[0] in args.packages.split(",")]
    scratch_root = Path(tempfile.mkdtemp(prefix="hotswap-replay-"))
    counts: Dict[Tuple[str, str], Dict[str, int]] = {}
    notes: List[str] = []
    steps = 0
    for dist, packages, versions in chosen:
        trees = [source_tree(dist, v, packages) for v in versions]
        for i in range(len(versions) - 1):
            steps += 1
            fresh = run_worker(["fresh", str(trees[i + 1])])
            again = run_worker(["fresh", str(trees[i + 1])])
            if "error" not in fresh and "error" not in again:
                fresh = stable(fresh, again)
            for tool in tools:
                scratch = scratch_root / f"{dist}-{i}-{tool.split()[-1]}"
                result = run_worker(["replay", tool, str(trees[i]), str(trees[i + 1]), str(scratch)])
                shutil.rmtree(scratch, ignore_errors=True)
                tally = counts.setdefault((dist, tool), {"exact": 0, "refused": 0, "mismatch": 0, "steps": 0})
                tally["steps"] += 1
                step = f"{dist} {versions[i]} -> {versions[i + 1]}"
                if "error" in result or "error" in fresh:
                    tally["mismatch"] += 1
                    if tool == "hotswap":
                        notes.append(f"- {step}: the worker failed: {result.get('error') or fresh.get('error')}")
                    continue
                for module in result["changed"]:
                    verdict, detail = classify(result, fresh, module)
                    tally[verdict] += 1
                    if tool == "hotswap" and verdict != "exact":
                        notes.append(f"- {step}, {module}: {verdict}: {detail}")
            print(f"(replayed {dist} {versions[i]} -> {versions[i + 1]})", file=sys.stderr, flush=True)
    shutil.rmtree(scratch_root, ignore_errors=True)
    print(f"## Replaying release history: {steps} release-to-release steps (CPython {sys.version.split()[0]})\n")
    print("Changed modules per package: exact / refused cleanly / mismatch with a fresh import of the new release.\n")
    print("| package | steps | " + " | ".join(tools) + " |")
    print("|---|---:|" + "---|" * len(tools))
    for dist, _, versions in chosen:
        cells = []
        for tool in tools:
            t = counts.get((dist, tool), {"exact": 0, "refused": 0, "mismatch": 0})
            cells.append(f"{t['exact']} / {t['refused']} / {t['mismatch']}")
        print(f"| {dist} {versions[0]} to {versions[-1]} | {len(versions) - 1} | " + " | ".join(cells) + " |")
    totals = []
    for tool in tools:
        t = [sum(c.get(k, 0) for (d, n), c in counts.items() if n == tool) for k in ("exact", "refused", "mismatch")]
        totals.append(" / ".join(map(str, t)))
    print(f"| **all** | {steps} | " + " | ".join(totals) + " |")
    if notes:
        print("\nhotswap, module by module (refusals say why; mismatches say what differs):\n")
        print("\n".join(notes))
    return 0


def worker_main(argv: List[str]) -> None:
    kind, rest = argv[0], argv[1:]
    result = fresh_worker(*rest) if kind == "fresh" else replay_worker(*rest)
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2:])
    else:
        sys.exit(main())
