"""Logging set-up: ``HOTSWAP_LOG=trace|debug|info|warn|error`` sets the level on both sides.

The Rust core reads the variable itself (``src/log.rs``, through tracing's env filter; default ``warn``).
Python-side messages go to ``logging.getLogger("hotswap")``; when the variable is set, that logger gets the
same level and, if the program configured no handler for it, one that writes to stderr. Without the variable,
logging is left entirely to the program.
"""

from __future__ import annotations

import logging
import os

from . import _native

LOG_ENV = _native.LOG_ENV  # "HOTSWAP_LOG", defined in src/log.rs

_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR}


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
        return
    logger = logging.getLogger("hotswap")
    logger.setLevel(level)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("hotswap %(levelname)s: %(message)s"))
        logger.addHandler(handler)
