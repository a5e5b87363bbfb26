"""Logging set-up: ``HOTSWAP_LOG=trace|debug|info|warn|error`` sets the level on both sides.

Every message carries one prefix, the handler's (``hotswap WARNING: ...``); messages themselves never repeat it.
A value that names no level warns once (a RuntimeWarning) and changes nothing.

The Rust core reads the variable itself (``src/log.rs``, through tracing's env filter; default ``warn``).
Python-side messages go to ``logging.getLogger("hotswap")``; when the variable is set, that logger gets the
same level and, if the program configured no handler for it, one that writes to stderr. Without the variable,
logging is left entirely to the program.
"""

from __future__ import annotations

import logging
import os
import warnings

from . import _native

LOG_ENV = _native.LOG_ENV  # "HOTSWAP_LOG", defined in src/log.rs

_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR}


_warned = False


def configure() -> None:
    value = os.environ.get(LOG_ENV, "").strip().lower()
    if not value:
        return
    # Accept a tracing directive such as "hotswap=debug,notify=warn": take the first bare or hotswap level.
    level = None
    for part in value.split(","):
        target, _, lvl = part.rpartition("=")
        if target in ("", "hotswap") and lvl in _LEVELS:
            level = _LEVELS[lvl]
            break
    if level is None:
        # Once per process: a typo must not silently mean "no logging", nor be repeated.
        global _warned
        if _warned:
            return
        _warned = True
        warnings.warn(
            f"{LOG_ENV}={os.environ[LOG_ENV]!r} names no level; use one of trace, debug, info, warn, error (or a "
            f"filter such as 'hotswap=debug'); logging is left as the program configured it",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    logger = logging.getLogger("hotswap")
    logger.setLevel(level)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("hotswap %(levelname)s: %(message)s"))
        logger.addHandler(handler)
