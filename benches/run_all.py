"""Runs every benchmark script in benches/ and writes benches/RESULTS.md (machine, load, Python, date, each table).

Each script prints its own markdown tables, with the issue's target beside each figure that has one; this only
collects them, each section under a `<!-- benches/NAME.py -->` line, and says how long each script took.

    python benches/run_all.py              run them all (`make bench`), write RESULTS.md
    python benches/run_all.py --readme     then rewrite README.md's tables from it (`make bench-readme`)
    python benches/run_all.py --readme-only   rewrite README.md's tables from the RESULTS.md there is

README.md marks each table a run fills between `<!-- bench: NAME.py N -->` and `<!-- /bench -->`: the N-th
markdown table (from 1) that NAME.py printed. So one run on a quiet machine updates them all.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "RESULTS.md"
README = HERE.parent / "README.md"
OWN_TARGETS = {"run_all.py", "replay.py"}
SECTION = re.compile(r"^<!-- benches/(\S+\.py) -->$", re.M)
BLOCK = re.compile(r"^(<!-- bench: (\S+\.py) (\d+) -->\n)(.*?)^(<!-- /bench -->)$", re.M | re.S)


def run_all() -> int:
    # replay.py downloads releases from the package index: it is its own target, `make replay`.
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name not in OWN_TARGETS)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    sections = []
    timings = []
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        timings.append((script.name, time.monotonic() - started))
        sys.stdout.write(proc.stdout)
        print(f"({script.name}: {timings[-1][1]:.0f} s)", flush=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            failed.append(script.name)
            tail = proc.stderr[-2000:]
            body = f"## {script.name}\n\nfailed (exit {proc.returncode}):\n\n```\n{tail}\n```"
        else:
            body = proc.stdout.strip()
        sections.append(f"<!-- benches/{script.name} -->\n{body}\n")
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    total = sum(seconds for _, seconds in timings)
    header = [
        "# hotswap benchmark results",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs {cpu}".rstrip(),
        f"- load average (1 min) at the start and the end: {load_before:.1f}, {load_after:.1f}",
        f"- Python: {sys.version.split()[0]} ({sys.implementation.name})",
        f"- one run of `benches/run_all.py`, {total / 60:.1f} minutes: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings),
        "",
    ]
    RESULTS.write_text("\n".join(header) + "\n" + "\n".join(sections))
    print(f"wrote {RESULTS} ({total / 60:.1f} minutes)")
    return 1 if failed else 0


def tables_by_script(results: str) -> dict:
    """script name -> the markdown tables (each a string of `|` lines) it printed, in order."""
    tables: dict = {}
    marks = list(SECTION.finditer(results))
    for mark, following in zip(marks, marks[1:] + [None]):
        body = results[mark.end():following.start() if following else len(results)]
        found = []
        current: list = []
        for line in body.splitlines() + [""]:
            if line.startswith("|"):
                current.append(line)
            elif current:
                found.append("\n".join(current) + "\n")
                current = []
        tables[mark.group(1)] = found
    return tables


def update_readme(results: str, readme: str) -> "tuple[str, list]":
    """README text with every marked table replaced from ``results``; and what could not be filled."""
    tables = tables_by_script(results)
    missing = []

    def fill(block: re.Match) -> str:
        script, number = block.group(2), int(block.group(3))
        found = tables.get(script, [])
        if not 1 <= number <= len(found):
            missing.append(f"{script} table {number} (the run printed {len(found)})")
            return block.group(0)
        return block.group(1) + found[number - 1] + block.group(5)

    return BLOCK.sub(fill, readme), missing


def rewrite_readme() -> int:
    if not RESULTS.exists():
        print(f"no {RESULTS}: run `make bench` first", file=sys.stderr)
        return 1
    readme = README.read_text()
    text, missing = update_readme(RESULTS.read_text(), readme)
    README.write_text(text)
    print(f"filled {len(BLOCK.findall(readme)) - len(missing)} of the marked tables of {README} from {RESULTS}")
    for item in missing:
        print(f"left as it was: {item}", file=sys.stderr)
    return 1 if missing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--readme", action="store_true", help="after the run, rewrite README.md's tables")
    group.add_argument("--readme-only", action="store_true", help="only rewrite README.md's tables from RESULTS.md")
    args = parser.parse_args()
    if args.readme_only:
        return rewrite_readme()
    status = run_all()
    if args.readme:
        status = rewrite_readme() or status
    return status


if __name__ == "__main__":
    sys.exit(main())
