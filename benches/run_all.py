"""Runs every benchmark script in benches/ and writes benches/RESULTS.md (machine, Python, date, each table).

Each script prints its own markdown table; this only collects them. Run with `make bench`.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
OWN_TARGETS = {"run_all.py", "replay.py"}


def main() -> int:
    # replay.py downloads releases from the package index: it is its own target, `make replay`.
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name not in OWN_TARGETS)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    header = [
        "# hotswap benchmark results",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs {cpu}".rstrip(),
        f"- Python: {sys.version.split()[0]} ({sys.implementation.name})",
        "",
    ]
    sections = []
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            failed.append(script.name)
            tail = proc.stderr[-2000:]
            sections.append(f"## {script.name}\n\nfailed (exit {proc.returncode}):\n\n```\n{tail}\n```\n")
        else:
            sections.append(proc.stdout.strip() + "\n")
    (HERE / "RESULTS.md").write_text("\n".join(header) + "\n" + "\n".join(sections))
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
