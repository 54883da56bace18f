"""``python -m pipeline.emulator``: run the local emulator (same flags as ``thumbnail-ingest emulator``)."""

from pipeline.emulator.runtime import main

raise SystemExit(main())
