"""``python -m pipeline`` and the ``thumbnail-ingest`` console script: ``pipeline.cli.main``, except that a bare
``--version`` is answered here, without importing the CLI (whose parser loads aiohttp, pyarrow and Pillow)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn


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


def script() -> NoReturn:
    """The process: ``run``, then exit with its code once stdout and stderr are flushed, without the
    interpreter's finalization. Everything the run wrote is closed by then (journal, results, report, spill);
    what finalization would still do is wait on threads of pyarrow's I/O pool, and one of them still reading a
    malformed manifest when the run stopped aborted the interpreter there (``PyGILState_Release``, exit 134)."""
    code = run()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed or missing: nothing more to say
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    script()
