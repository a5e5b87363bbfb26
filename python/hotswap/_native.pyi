"""Type stubs and documentation for hotswap's native core (Rust, PyO3)."""

from types import CodeType, FunctionType
from typing import Iterable, Optional, Sequence, Tuple

__version__: str
LOG_ENV: str
"""Name of the environment variable that filters Rust-side logging (``HOTSWAP_LOG``)."""

class HotswapError(Exception):
    """Base class of hotswap's own errors."""

class Stmt:
    """One top-level statement of a module (or, in ``members``, of a class body)."""

    kind: str
    """``"def"``, ``"class"`` or ``"other"``."""
    name: Optional[str]
    text: str
    """Exact source text, decorators included."""
    lineno: int
    """First line (of the first decorator, if any), 1-based."""
    end_lineno: int
    def_lineno: int
    """Line of the ``def``/``class`` keyword."""
    def_text: str
    """The statement from its ``def``/``class`` line on, without decorators."""
    decorators: list[str]
    binds: list[str]
    """Names the statement binds in the namespace it runs in."""
    reads: list[str]
    """Names the statement reads while it runs (function bodies excluded; class bodies included)."""
    calls_reloading: bool
    defaults: list[Tuple[str, str, list[str]]]
    """For a def: (parameter, default expression text, names that expression reads)."""
    nested_scopes: bool
    """Whether the statement creates function objects of its own when it, or the function it defines, runs."""
    members: list["Stmt"]
    def __init__(
        self, *, kind: str, name: Optional[str], text: str, lineno: int, end_lineno: int, def_lineno: int,
        def_text: str, decorators: Sequence[str], binds: Sequence[str], reads: Sequence[str],
        calls_reloading: bool, defaults: Sequence[Tuple[str, str, Sequence[str]]], nested_scopes: bool,
        members: Sequence["Stmt"],
    ) -> None: ...

def split_statements(source: str, path: str = "<unknown>") -> list[Stmt]:
    """Splits module source into top-level statements; SyntaxError where rustpython-parser rejects it."""

def split_statements_incremental(old: str, old_stmts: Sequence[Stmt], new: str, path: str = "<unknown>") -> list[Stmt]:
    """Like ``split_statements(new)``, reusing the statements of ``old`` that lie in text both share."""

class Step:
    index: int
    """Index into the new statements."""
    old_index: Optional[int]
    action: str
    """``"run"``, ``"patch"`` or ``"move"``."""
    reason: str

class Plan:
    steps: list[Step]
    removed: list[str]
    """Definitions the old source had and the new one binds nowhere."""
    rebound: list[str]
    """Names this reload binds to new objects."""

def plan(old: Sequence[Stmt], new: Sequence[Stmt], *, whole_module: bool = False) -> Plan:
    """Decides which statements run, which definitions are patched in place and which only moved."""

def apply(ops: Iterable[tuple]) -> int:
    """Applies a batch of writes holding the GIL, all or none; returns how many were applied.

    Ops: ``("func", function, code, closure, defaults, kwdefaults, annotations, doc, type_params | None)``,
    ``("setattr", obj, name, value)``, ``("delattr", obj, name)`` (classes through ``type.__setattr__``),
    ``("setitem", dict, key, value)``, ``("delitem", dict, key)``, ``("cell", cell, value)``.
    """

def find_functions(codes: Sequence[CodeType]) -> list[list[FunctionType]]:
    """For each code object, the live functions running it (one sweep of ``gc.get_objects()``)."""
