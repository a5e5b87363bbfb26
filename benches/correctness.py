"""Correctness matrix: which reloaders handle each of hotswap's reload scenarios (tests/snippets/<case>/).

A case passes for a tool when, after the tool reloads the edited module, ``check.verify`` holds on references
taken before the edit. Every tool gets fresh module copies, in the same process run.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _tools import available  # noqa: E402

SNIPPETS = Path(__file__).parent.parent / "tests" / "snippets"


def run_case(tool, case: Path, root: Path, index: int) -> str:
    spec = importlib.util.spec_from_file_location(f"check_{case.name}_{index}", case / "check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    name = f"snip_{case.name}_{index}"
    path = root / f"{name}.py"
    path.write_text((case / "before.py").read_text())
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(name)
        tool.prepare(module)
        refs = check.capture(module)
        path.write_text((case / "after.py").read_text())
        tool.reload(module)
        check.verify(sys.modules[name], refs)
        return "pass"
    except AssertionError:
        return "FAIL"
    except Exception as exc:  # noqa: BLE001 - a tool crashing on a case is a result, not a benchmark error
        return f"error ({type(exc).__name__})"
    finally:
        sys.modules.pop(name, None)


def main() -> None:
    tools = {name: tool for name, tool in available().items() if tool is not None}
    root = Path(tempfile.mkdtemp(prefix="hotswap-correctness-"))
    sys.path.insert(0, str(root))
    cases = sorted(p for p in SNIPPETS.iterdir() if (p / "before.py").exists())
    # Cases that use hotswap's own API (currently_reloading) say nothing about the other tools.
    own_api = [p.name for p in cases if "import hotswap" in (p / "before.py").read_text()]
    cases = [p for p in cases if p.name not in own_api]
    results = {name: [] for name in tools}
    for i, case in enumerate(cases):
        for name, tool in tools.items():
            results[name].append(run_case(tool, case, root, i * 100 + list(tools).index(name)))
    print(f"## Correctness: reload scenarios handled (tests/snippets, CPython {sys.version.split()[0]})\n")
    print("| case | " + " | ".join(tools) + " |")
    print("|---|" + "---|" * len(tools))
    for i, case in enumerate(cases):
        print(f"| {case.name} | " + " | ".join(results[name][i] for name in tools) + " |")
    print("| **passed** | " + " | ".join(f"{results[n].count('pass')}/{len(cases)}" for n in tools) + " |")
    if own_api:
        print(f"\nLeft out (they use hotswap's own API): {', '.join(own_api)}.")


if __name__ == "__main__":
    main()
