"""Type stubs of ``hotswap._native``, the Rust extension module. Every native item is documented here."""


import os
from collections.abc import Sequence

# --- import scanning (src/imports.rs) ------------------------------------------------------------------------

class ImportSite:
    """One imported name at one place of one file, as the native scanner found it (frozen).

    ``hotswap.scan_imports`` turns these into ``hotswap.imports.ImportRecord`` (adding the classification).
    """

    module: str
    """Absolute dotted module: ``a.b`` for ``import a.b`` and for ``from a.b import c``. Relative imports are resolved
    against the file's package (from ``__init__.py`` files); one that climbs above the top keeps its dots."""
    name: str | None
    """``c`` for ``from a.b import c`` (``*`` for a star import); None for ``import a.b``."""
    lineno: int
    """1-based line of the import statement."""
    level: int
    """Leading dots of a relative import; 0 for an absolute one."""
    type_checking_only: bool
    """The import is inside ``if TYPE_CHECKING:`` (or ``if <x>.TYPE_CHECKING:``, or the ``else`` of
    ``if not TYPE_CHECKING:``)."""
    file: str
    """The file it was found in."""

def scan_import_sites(
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[list[ImportSite], list[tuple[str, str]]]:
    """Lists the imports of every ``.py`` file under ``paths`` (files, or directories walked recursively).

    Imports at any depth count: inside ``try``, ``with``, ``for``, ``while``, ``match``, function and class bodies.
    Hidden directories, ``__pycache__``, ``node_modules``, ``site-packages`` and virtual environments (a directory
    holding ``pyvenv.cfg``) are skipped. Files are parsed with rustpython-parser on up to
    ``available_parallelism`` threads with the GIL released, and cached by content hash for the process's life
    (so a rescan only parses edited files).

    Returns:
        ``(sites, failed)``: the sites sorted by file then position, and ``(file, reason)`` for each file that could
        not be read or that rustpython-parser rejects (for example 3.12 nested same-quote f-strings); the caller
        decides what to do with those (``scan_imports`` retries them with CPython's ``ast``). Never raises for a
        bad file.

    Example:
        >>> import tempfile, os
        >>> from hotswap._native import scan_import_sites
        >>> d = tempfile.mkdtemp()
        >>> _ = open(os.path.join(d, "m.py"), "w").write("try:\\n    import json\\nexcept ImportError:\\n    pass\\n")
        >>> sites, failed = scan_import_sites([d])
        >>> [(s.module, s.lineno) for s in sites], failed
        ([('json', 2)], [])
    """

def scan_source_imports(source: str, path: str = "<unknown>", package: str = "") -> list[ImportSite]:
    """The imports of one module's source text (no file access, no cache).

    Args:
        source: the module's source.
        path: the file name to record in each site.
        package: the dotted package relative imports are resolved against (``""``: none).

    Raises:
        SyntaxError: rustpython-parser rejects the source; the message starts with ``line N:``.

    Example:
        >>> from hotswap._native import scan_source_imports
        >>> [(s.module, s.name) for s in scan_source_imports("from .models import User\\n", package="app")]
        [('app.models', 'User')]
    """

# --- the fork-based template (src/template.rs; the supervisor is hotswap/template.py) ------------------------

class HotswapError(Exception):
    """Base class of hotswap's own errors."""

class TemplateError(HotswapError):
    """The template process failed to start, could not fork, or crashed. The message says which; a crashed template
    is restarted on the next ``exec``."""

class ChildExitedError(HotswapError):
    """An isolated call's process ended (``os._exit``, ``sys.exit``, a signal, a crash) without reporting a result.

    ``hotswap.template`` sets ``returncode`` on instances it raises: the exit code, or ``-N`` for signal N.
    """

    returncode: int | None

class IsolatedCallError(HotswapError):
    """An isolated call raised an exception that could not be re-created in the caller (its class is not
    importable there, or it does not unpickle). The message names the original type; ``child_traceback`` holds
    the child's formatted traceback."""

    child_traceback: str
