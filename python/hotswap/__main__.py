"""``hotswap`` command line (``hotswap run ...`` or ``python -m hotswap run ...``); the logic is in ``hotswap.run``."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hotswap`` console script."""
    from .run import main as run_main

    return run_main(argv)


if __name__ == "__main__":
    sys.exit(main())
