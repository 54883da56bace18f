"""``python -m pipeline``: the same as the ``thumbnail-ingest`` console script."""

from pipeline.cli import main

raise SystemExit(main())
