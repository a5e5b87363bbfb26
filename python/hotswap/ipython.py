"""The IPython extension: ``%load_ext hotswap`` applies saved edits of your modules before each cell.

Mechanism: one ``AutoReloader`` with ``apply="manual"`` per watched root listens to the native watcher, which
says which files changed; IPython's ``pre_run_cell`` event calls ``apply_pending()`` on each, so a save made
while a cell runs is applied before the next cell, never in the middle of one (unless ``%hotswap apply thread``).
Nothing is stat-ed per cell: a cell with nothing saved costs one look at each root's queue, whatever the number
of imported modules. After a cell whose code imported modules (``len(sys.modules)`` changed), the new
modules are classified and a root is added for a project module that lies outside the watched ones.

Which modules are yours (``project_dirs``): those loaded from a ``.py`` file under the current directory or under
a ``sys.path`` directory, except the standard library, site-packages and the interpreter's own prefixes. The
watched root of such a module is its top-level package's directory, or, for a plain module, the directory it
sits in; hidden directories (``.*``) under a root are not watched. ``%hotswap watch PATH_OR_MODULE`` adds any
directory, an installed package's included.

Trade-off: the watcher reports a save within about 10 ms; a cell run sooner than that after the save (a script
writing a module and running the next cell at once) gets the edit one cell later. ``%%writefile`` cells are
handled at once: the file they wrote is compared with what its module runs before the next cell.
"""

from __future__ import annotations

import ast
import os
import shlex
import site
import sys
import sysconfig
import threading
from collections import deque
from types import ModuleType
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

from IPython.core.magic import Magics, line_magic, magics_class

from .reload import ReloadReport, running_source
from .reload import reload as reload_module
from .watcher import AutoReloader, _module_file

__all__ = ["NotebookReloader", "load_ipython_extension", "project_dirs", "reloader_of", "unload_ipython_extension"]

#: Patterns never watched under a notebook's roots, besides the watcher's defaults: hidden directories (``.cache``,
#: ``.ipynb_checkpoints``, ``.local``) hold no modules of the project and can be large (a home directory's).
NOTEBOOK_EXCLUDE = (".*",)

_USAGE = """\
%hotswap                      status: watched roots, pending saves, last reloads
%hotswap on | off             apply saved edits before each cell, or stop (saves made meanwhile apply at `on`)
%hotswap reload [MODULE ...]  reload the modules now (no name: apply the pending saves now)
%hotswap mode changed|module  re-run only changed statements (default), or every statement of the module
%hotswap apply cell|thread    apply before each cell (default), or as soon as saved, even during a cell
%hotswap watch PATH|MODULE    also watch a directory, or an imported module (site-packages too)"""


def _library_dirs() -> Tuple[str, ...]:
    dirs = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.update(getattr(site, "getsitepackages", lambda: [])())
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    dirs.add(user_site if isinstance(user_site, str) else None)
    dirs.update({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix})
    dirs.add(os.path.dirname(os.path.abspath(__file__)))  # hotswap itself, even installed in editable mode
    return tuple(sorted({_as_prefix(d) for d in dirs if d and os.path.isdir(d)}))


def _as_prefix(path: str) -> str:
    return os.path.realpath(path).rstrip(os.sep) + os.sep


def project_dirs(cwd: Optional[str] = None, path: Optional[Sequence[str]] = None) -> Tuple[str, ...]:
    """The directories whose modules count as the project's: the current one and ``sys.path``'s own.

    Directories under the standard library, site-packages or the interpreter's prefix (a virtual environment)
    are left out, and so is a directory that holds the standard library (``/usr``). A project directory holding
    its own virtual environment (``.venv``) counts: the environment's modules are under the prefix.

    Args:
        cwd: the current directory (default ``os.getcwd()``).
        path: the import path (default ``sys.path``; ``""`` means the current directory).

    Returns:
        Real paths, each once, longest first.

    Example:
        >>> import os, sysconfig
        >>> os.path.realpath(os.getcwd()) in project_dirs()
        True
        >>> stdlib = sysconfig.get_paths()["stdlib"]
        >>> os.path.realpath(stdlib) in project_dirs(path=[stdlib])
        False
    """
    cwd = os.path.realpath(cwd if cwd is not None else os.getcwd())
    library = _library_dirs()
    stdlib = tuple(_as_prefix(p) for p in (sysconfig.get_paths().get("stdlib"), sys.base_prefix) if p)
    found = []
    for entry in [cwd, *(sys.path if path is None else path)]:
        if not isinstance(entry, str):
            continue
        real = os.path.realpath(os.path.join(cwd, entry)) if entry else cwd
        prefix = real.rstrip(os.sep) + os.sep
        if real != cwd and (not os.path.isdir(real) or prefix.startswith(library)
                            or any(p.startswith(prefix) for p in stdlib)):
            continue
        if real not in found:
            found.append(real)
    return tuple(sorted(found, key=len, reverse=True))


def _root_of(file: str, dirs: Sequence[str], library: Sequence[str]) -> Optional[str]:
    """The directory to watch for a module loaded from ``file``, or None when the file is not the project's."""
    real = os.path.realpath(file)
    if real.startswith(tuple(library)):
        return None
    for directory in dirs:  # longest first: the innermost import root
        prefix = directory.rstrip(os.sep) + os.sep
        if real.startswith(prefix):
            parts = real[len(prefix):].split(os.sep)
            if any(p.startswith(".") for p in parts[:-1]):
                return None  # under a hidden directory, which is never watched
            return os.path.join(directory, parts[0]) if len(parts) > 1 else directory
    return None


class NotebookReloader:
    """What ``%load_ext hotswap`` installs in a shell: the roots' reloaders, the switches and the last reports.

    Args:
        shell: the ``InteractiveShell``.
        mode: ``"changed"`` or ``"module"`` (passed to ``hotswap.reload``).

    Attributes:
        enabled: whether saves are applied (``%hotswap on|off``).
        reports: the last 20 reports, oldest first.

    Example:
        >>> from IPython.testing.globalipapp import get_ipython
        >>> ip = get_ipython()
        >>> ip.run_line_magic("load_ext", "hotswap")
        >>> ip.run_line_magic("hotswap", "off")
        hotswap: off (saves wait until `%hotswap on`)
        >>> ip.run_line_magic("unload_ext", "hotswap")
    """

    def __init__(self, shell: Any, mode: str = "changed") -> None:
        if mode not in ("changed", "module"):
            raise ValueError(f"mode must be 'changed' or 'module', not {mode!r}")
        self.shell = shell
        self.mode = mode
        self.apply = "cell"
        self.enabled = True
        self.reports: Deque[ReloadReport] = deque(maxlen=20)
        self._reloaders: Dict[str, AutoReloader] = {}
        self._modules: Dict[str, str] = {}  # module name -> watched root
        self._classified: Dict[str, Optional[str]] = {}  # module file -> its root (None: not the project's)
        self._dirs: Tuple[str, ...] = ()
        self._library = _library_dirs()
        self._seen = -1
        self._lock = threading.Lock()
        self._writefile: Optional[str] = None
        # (module, name) -> the names a cell bound with `from module import name [as alias]`
        self._imports: Dict[Tuple[str, str], set] = {}
        self.scan()

    # -- IPython events -----------------------------------------------------------------------------------------

    def pre_run_cell(self, info: Any = None) -> None:
        """Applies what was saved since the last cell (``pre_run_cell``); costs O(roots) when nothing was."""
        if len(sys.modules) != self._seen:  # imported outside a cell (a thread, a startup file)
            self.scan()
        if self._writefile is not None:
            self._apply_written(self._writefile)
            self._writefile = None
        if self.enabled:
            self.apply_pending()

    def post_run_cell(self, result: Any = None) -> None:
        """Starts watching the roots of modules the cell imported, before the user can edit them."""
        if len(sys.modules) != self._seen:
            self.scan()
        info = getattr(result, "info", None)
        cell = getattr(info, "raw_cell", None) or ""
        if cell.lstrip().startswith("%%writefile"):
            self._writefile = _writefile_target(cell)
        elif "import" in cell:
            for key, aliases in _from_imports(getattr(info, "transformed_cell", None) or cell).items():
                self._imports.setdefault(key, set()).update(aliases)

    # -- actions ------------------------------------------------------------------------------------------------

    def apply_pending(self) -> List[ReloadReport]:
        """Applies every root's pending saves now, one line printed per module, and rebinds the notebook's
        ``from m import X`` names whose object changed; returns the reports."""
        pending = self.pending
        if not pending:
            return []
        before = _snapshot(pending)
        reports: List[ReloadReport] = []
        for reloader in list(self._reloaders.values()):
            reports.extend(reloader.apply_pending())
        self._rebind(reports, before)
        return reports

    def reload(self, names: Sequence[str]) -> List[ReloadReport]:
        """Reloads the named modules now, in this order; prints one line each."""
        reports = []
        for name in names:
            module = sys.modules.get(name)
            if module is None:
                print(f"hotswap: no module named {name!r} is imported", file=sys.stderr)
                continue
            before = _snapshot([name])
            try:
                report = reload_module(module, mode=self.mode)
            except (TypeError, ValueError) as exc:
                print(f"hotswap: cannot reload {name}: {exc}", file=sys.stderr)
                continue
            self._show(report, logged=False)
            self._rebind([report], before)
            reports.append(report)
        return reports

    def set_mode(self, mode: str) -> None:
        if mode not in ("changed", "module"):
            raise ValueError(f"mode must be 'changed' or 'module', not {mode!r}")
        self.mode = mode
        for reloader in self._reloaders.values():
            reloader.mode = mode

    def set_apply(self, apply: str) -> None:
        if apply not in ("cell", "thread"):
            raise ValueError(f"apply must be 'cell' or 'thread', not {apply!r}")
        self.apply = apply
        if apply == "thread" and self.enabled:
            self.apply_pending()
        for reloader in self._reloaders.values():
            reloader.apply = "thread" if apply == "thread" and self.enabled else "manual"

    def set_enabled(self, enabled: bool) -> None:
        """``%hotswap on|off``: off queues saves (they apply at ``on``), and stops thread mode's reloads too."""
        self.enabled = enabled
        for reloader in self._reloaders.values():
            reloader.apply = "thread" if enabled and self.apply == "thread" else "manual"

    def watch(self, target: str) -> str:
        """Watches a directory, or an imported module (a package's directory, a plain module's file); returns the
        root."""
        if target in sys.modules:
            file = _module_file(sys.modules[target])
            if file is None:
                raise ValueError(f"{target} has no Python source file to watch")
            paths = getattr(sys.modules[target], "__path__", None)
            root = os.path.realpath(list(paths)[0] if paths else file)
        else:
            root = os.path.realpath(os.path.expanduser(target))
            if not os.path.isdir(root):
                raise ValueError(f"{target} is neither an imported module nor a directory")
        self._start(root)
        for name, module in list(sys.modules.items()):
            file = _module_file(module) if isinstance(module, ModuleType) else None
            if file is not None and _within(os.path.realpath(file), root):
                self._modules.setdefault(name, root)
        return root

    def scan(self) -> None:
        """Classifies the modules imported since the last scan and starts watching roots not yet watched."""
        with self._lock:
            seen = len(sys.modules)
            dirs = project_dirs()
            if dirs != self._dirs:  # `%cd` or a sys.path change: decide again
                self._dirs = dirs
                self._classified.clear()
            for name, module in list(sys.modules.items()):
                if name in self._modules or not isinstance(module, ModuleType) or name == "__main__":
                    continue
                file = _module_file(module)
                if file is None:
                    continue
                root = self._classified.get(file, "")
                if root == "":
                    root = _root_of(file, self._dirs, self._library)
                    self._classified[file] = root
                if root is None:
                    continue
                self._modules[name] = root
                if not self._covered(root):
                    try:
                        self._start(root)
                    except (OSError, RuntimeError, ValueError) as exc:  # removed meanwhile, no watch left
                        print(f"hotswap: cannot watch {root}: {exc}; {name} is not reloaded", file=sys.stderr)
            self._seen = seen

    def close(self) -> None:
        for reloader in self._reloaders.values():
            reloader.stop()
        self._reloaders.clear()

    # -- status -------------------------------------------------------------------------------------------------

    @property
    def roots(self) -> Tuple[str, ...]:
        """The watched directories."""
        return tuple(self._reloaders)

    @property
    def reloaders(self) -> Tuple[AutoReloader, ...]:
        """One ``AutoReloader`` per watched root."""
        return tuple(self._reloaders.values())

    @property
    def pending(self) -> List[str]:
        """Modules saved and not applied yet."""
        return [name for reloader in self._reloaders.values() for name in reloader.pending]

    def status(self) -> str:
        when = "before each cell" if self.apply == "cell" else "as soon as saved (thread)"
        lines = [f"hotswap: {'on' if self.enabled else 'off'}, mode {self.mode}, applied {when}"]
        if self._reloaders:
            backends = sorted({r.backend for r in self._reloaders.values()})
            lines.append(f"watching ({'/'.join(backends)}), by root:")
            for root in self._reloaders:
                names = sorted(n for n, r in self._modules.items() if _within(r, root) and n in sys.modules)
                more = f", ... ({len(names)} modules)" if len(names) > 10 else ""
                lines.append(f"  {root}: {', '.join(names[:10]) or 'no module yet'}{more}")
        else:
            lines.append("watching nothing yet: no module of the project is imported")
        pending = self.pending
        if pending:
            lines.append(f"pending: {', '.join(pending)}")
        if self.reports:
            lines.append("last reloads:")
            lines.extend(f"  {_line(report)}" for report in self.reports)
        return "\n".join(lines)

    # -- internals ----------------------------------------------------------------------------------------------

    def _covered(self, root: str) -> bool:
        return any(_within(root, r) for r in self._reloaders)

    def _start(self, root: str) -> None:
        if self._covered(root):
            return
        apply = "thread" if self.apply == "thread" and self.enabled else "manual"
        self._reloaders[root] = AutoReloader(
            root, exclude=NOTEBOOK_EXCLUDE, mode=self.mode, apply=apply, on_reload=self._show
        )

    def _show(self, report: ReloadReport, logged: bool = True) -> None:
        """One line per report; a failure from a reloader was already logged by it, as the same one line."""
        self.reports.append(report)
        if report.ok:
            print(_line(report), flush=True)
        elif not logged:
            print(_line(report), file=sys.stderr, flush=True)

    def _rebind(self, reports: Sequence[ReloadReport], before: Dict[str, Dict[str, Any]]) -> None:
        """Rebinds the notebook's ``from m import X`` names whose object ``m``'s reload replaced.

        Functions and classes keep their identity, so only rebound values (a changed constant, a class that had
        to be replaced) are concerned. A name is rebound when it still holds the module's old object: under the
        same name, or under the alias a cell's ``from m import X as Y`` gave it.
        """
        user_ns = self.shell.user_ns
        for report in reports:
            old = before.get(report.module)
            module = sys.modules.get(report.module)
            if not report.ok or old is None or module is None:
                continue
            new = vars(module)
            for name, old_value in old.items():
                if name.startswith("__") or new.get(name, old_value) is old_value:
                    continue
                for alias in self._imports.get((report.module, name), set()) | {name}:
                    if alias in user_ns and user_ns[alias] is old_value:
                        user_ns[alias] = new[name]

    def _apply_written(self, filename: str) -> None:
        """After a ``%%writefile`` cell: reloads the module loaded from that file if it now differs."""
        real = os.path.realpath(os.path.expanduser(filename))
        if not self.enabled or not real.endswith(".py"):
            return
        for name, module in list(sys.modules.items()):
            file = _module_file(module) if isinstance(module, ModuleType) else None
            if file is None or os.path.realpath(file) != real or name not in self._modules:
                continue
            try:
                with open(real, "rb") as file:
                    content = file.read()
            except OSError:  # removed since: the watcher will say so
                continue
            running = running_source(module)
            if running is not None and content != running:
                before = _snapshot([name])
                report = reload_module(module, mode=self.mode, source=content)
                self._show(report, logged=False)
                self._rebind([report], before)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _snapshot(names: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """The namespaces of the named modules as they are now (shallow copies), to see what a reload rebinds."""
    return {name: dict(vars(sys.modules[name])) for name in names if name in sys.modules}


def _from_imports(code: str) -> Dict[Tuple[str, str], set]:
    """``{(module, name): {alias}}`` for every absolute ``from module import name [as alias]`` in ``code``."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return {}
    found: Dict[Tuple[str, str], set] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if alias.name != "*":
                    found.setdefault((node.module, alias.name), set()).add(alias.asname or alias.name)
    return found


def _writefile_target(cell: str) -> Optional[str]:
    """The file a ``%%writefile [-a] FILE`` cell wrote, or None."""
    try:
        words = shlex.split(cell.lstrip().splitlines()[0])[1:]
    except ValueError:
        return None
    names = [w for w in words if not w.startswith("-")]
    return names[0] if names else None


def _line(report: ReloadReport) -> str:
    """One line: ``hotswap: m: patched 1 (0.41 ms)``, or the failing file:line and the reason."""
    if report.ok:
        return f"hotswap: {report.summary()}"
    return f"hotswap: {report.where()}: {report.reason()}; {report.module} keeps running its old code"


@magics_class
class HotswapMagics(Magics):
    """The ``%hotswap`` line magic (it stays registered after ``%unload_ext``, and then says so)."""

    @line_magic
    def hotswap(self, line: str = "") -> None:
        """Controls hotswap's reloading in this shell; ``%hotswap help`` lists the commands."""
        reloader = reloader_of(self.shell)
        words = line.split()
        command, args = (words[0], words[1:]) if words else ("status", [])
        if reloader is None:
            print("hotswap: not loaded; run `%load_ext hotswap`", file=sys.stderr)
            return
        try:
            if command == "status" and not args:
                print(reloader.status())
            elif command in ("on", "off") and not args:
                reloader.set_enabled(command == "on")
                print("hotswap: on" if command == "on" else "hotswap: off (saves wait until `%hotswap on`)")
            elif command == "reload":
                if args:
                    reloader.reload(args)
                elif not reloader.apply_pending():
                    print("hotswap: nothing to reload")
            elif command == "mode" and len(args) == 1:
                reloader.set_mode(args[0])
                print(f"hotswap: mode {args[0]}")
            elif command == "apply" and len(args) == 1:
                reloader.set_apply(args[0])
                print(f"hotswap: applying {'before each cell' if args[0] == 'cell' else 'as soon as saved'}")
            elif command == "watch" and len(args) == 1:
                print(f"hotswap: watching {reloader.watch(args[0])}")
            else:
                print(_USAGE)
        except (OSError, RuntimeError, ValueError) as exc:
            print(f"hotswap: {exc}", file=sys.stderr)


_active: Dict[int, NotebookReloader] = {}


def reloader_of(shell: Any) -> Optional[NotebookReloader]:
    """The ``NotebookReloader`` that ``%load_ext hotswap`` installed in ``shell``, or None.

    Example:
        >>> from IPython.testing.globalipapp import get_ipython
        >>> reloader_of(get_ipython()) is None
        True
    """
    return _active.get(id(shell))


def load_ipython_extension(shell: Any) -> None:
    """Installs hotswap in an IPython shell (``%load_ext hotswap``): watches, then applies saves before cells."""
    if id(shell) in _active:
        return
    reloader = NotebookReloader(shell)
    _active[id(shell)] = reloader
    shell.register_magics(HotswapMagics(shell))
    shell.events.register("pre_run_cell", reloader.pre_run_cell)
    shell.events.register("post_run_cell", reloader.post_run_cell)


def unload_ipython_extension(shell: Any) -> None:
    """Stops watching and unhooks from the shell's events (``%unload_ext hotswap``); the magic then says so."""
    reloader = _active.pop(id(shell), None)
    if reloader is None:
        return
    shell.events.unregister("pre_run_cell", reloader.pre_run_cell)
    shell.events.unregister("post_run_cell", reloader.post_run_cell)
    reloader.close()
