"""``python -m pipeline`` and the ``thumbnail-ingest`` console script: ``pipeline.cli.main``, except that a bare
``--version`` is answered here, without importing the CLI (whose parser loads aiohttp, pyarrow and Pillow)."""

from __future__ import annotations

import sys


def run() -> int:
    """The exit code of ``thumbnail-ingest`` run with ``sys.argv``: ``--version`` alone prints
    ``thumbnail-ingest VERSION`` on stdout (what argparse would print) and returns 0; anything else is
    ``pipeline.cli.main``."""
    if sys.argv[1:] == ["--version"]:
        from pipeline import __version__

        print(f"thumbnail-ingest {__version__}")
        return 0
    from pipeline.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(run())
