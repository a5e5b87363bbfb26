"""Synthetic modules for the benchmarks: functions, classes with methods, constants, in realistic proportions."""

from __future__ import annotations


def make_module(functions: int) -> str:
    """Source of about ``6 * functions`` lines: ``functions`` top-level functions and functions/10 classes."""
    parts = ["import math", "", "SCALE = 3", ""]
    for i in range(functions):
        parts.append(
            f"def func_{i}(x, y=SCALE):\n"
            f"    total = x * y + {i}\n"
            f"    for k in range(3):\n"
            f"        total += math.sqrt(k + {i})\n"
            f"    return total\n"
        )
    for i in range(max(1, functions // 10)):
        parts.append(
            f"class Model{i}:\n"
            f"    kind = 'model{i}'\n"
            f"    def __init__(self, value):\n"
            f"        self.value = value\n"
            f"    def score(self):\n"
            f"        return self.value * {i}\n"
            f"    @property\n"
            f"    def name(self):\n"
            f"        return self.kind\n"
        )
    parts.append("def target(x):\n    return x + 1\n")
    return "\n".join(parts)


def edit(source: str, version: int) -> str:
    """The same module with ``target``'s body changed (alternate versions differ by one constant)."""
    return source.replace("def target(x):\n    return x + 1\n", f"def target(x):\n    return x + {version + 2}\n")


def line_count(source: str) -> int:
    return source.count("\n") + 1
