"""Where fetch and prepare run: the ``Engine`` protocol and the local pool (``engine``), Ray (``ray_engine``), and
the one function every engine runs for a job (``work``).

This package's ``__init__`` imports nothing, so a Ray worker that unpickles ``work.work`` loads only what a job
needs (Pillow and the source readers), never the runner, the API client or pyarrow.
"""
