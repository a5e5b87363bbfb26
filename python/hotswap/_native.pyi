"""Type stubs of ``hotswap._native``, the Rust extension module. Every native item is documented here."""


from typing import ClassVar, List, Optional, Sequence, Tuple

# --- file watching (src/watch.rs) ----------------------------------------------------------------------------

class Watcher:
    """Watches directory trees from native threads and hands out batches of changed files.

    Each directory under the roots is watched non-recursively with the OS's notification API (notify's native
    backend), except ignored trees (``default_ignored_dirs``, ``.venv*``, directories holding ``pyvenv.cfg`` or
    ``CACHEDIR.TAG``), which are never walked or watched; new directories are watched as they appear. Symlinked
    directories are not followed, and a file whose real path is outside the roots is never reported. Editors'
    temporary files (``*~``, ``4913``, ``*.swp``, ``*.___jb_*___``, ``.#*``) are never reported.

    Events are coalesced into a batch that ends when no event came for ``debounce_ms``, or ``max_batch_ms`` after
    its first event. A file modified and not yet closed by its writer (close-after-write, inotify only) holds the
    batch, for at most 1 s from its first event, so a truncated or half-written file is not reported.

    When the native backend cannot start (ENOSYS, inotify instance or watch limits), or with ``force_polling``,
    notify's PollWatcher polls every 200 ms, hashing file contents (its mtimes have whole-second resolution);
    ``backend`` and ``fallback_reason`` say so. The notify and batcher threads never run Python code.

    Example:
        >>> import tempfile
        >>> from hotswap._native import Watcher
        >>> w = Watcher([tempfile.mkdtemp()])
        >>> w.wait(0.01) is None
        True
        >>> w.stop()
    """

    default_ignored_dirs: ClassVar[List[str]]
    """Directory names never watched; equal to ``hotswap.watcher.DEFAULT_IGNORED_DIRS``."""

    backend: str
    """``"native"`` (inotify, FSEvents, ...) or ``"poll"``."""

    fallback_reason: Optional[str]
    """Why the polling backend is used (``"force_polling=True"``, or the native backend's error), else None."""

    watched_dirs: int
    """How many directories were watched at start."""

    running: bool
    """Whether the batcher thread is running (False after ``stop()``)."""

    def __init__(
        self,
        roots: Sequence[str],
        *,
        include: Sequence[str] = ("*.py",),
        exclude: Sequence[str] = (),
        debounce_ms: int = 5,
        max_batch_ms: int = 100,
        force_polling: bool = False,
        simulate_native_error: bool = False,
    ) -> None:
        """Starts watching at once (the initial walk runs with the GIL released).

        Args:
            roots: existing directories; watched through their real paths.
            include: ``fnmatch`` patterns a file's name or root-relative path must match to be reported.
            exclude: patterns of files and directories to skip (in addition to the defaults).
            debounce_ms: quiet period that ends a batch.
            max_batch_ms: longest a batch of settled files is held under a continuous stream of events.
            force_polling: use notify's PollWatcher.
            simulate_native_error: for tests: behave as if the native backend failed to start.

        Raises:
            FileNotFoundError: a root does not exist.
            ValueError: no root, or a root is not a directory.
            RuntimeError: no backend could start.
        """

    def wait(self, timeout_s: Optional[float] = None) -> Optional[Tuple[List[Tuple[str, bool]], List[str]]]:
        """Blocks (GIL released, signals checked every 50 ms) for the next batch.

        Returns:
            ``(files, notes)``: ``files`` lists ``(real path, exists)`` in first-seen order, each path once, with
            ``exists`` decided from the file's state when the batch ended (a batch may hold a delete and a
            create of the same path); ``notes`` are backend problems to log. None at timeout or once stopped.

        Raises:
            KeyboardInterrupt: (or whatever a signal handler raises) when called on the main thread.
        """

    def stop(self) -> None:
        """Stops watching and joins the batcher thread; the backend's file descriptors are closed on return.

        Idempotent; a blocked ``wait`` returns None.
        """
