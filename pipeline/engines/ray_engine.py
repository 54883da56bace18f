"""``RayEngine``: fetch and prepare on a Ray cluster's CPUs, one Ray task per job (``runner.work.work``).

Tasks rather than Ray Data: the driver's plan streams jobs one manifest batch at a time and owns backpressure
(the prepare stage takes a job only when a slot is free, and a slot frees only once its prepared image is in
the upload pipe under ``--prepared-max-bytes``). Ray Data's streaming executor would own that pacing itself,
reading ahead of the journal and the upload. Each task is retried by Ray when its worker or node dies
(``max_retries``): it is pure, so running it twice is harmless; exactly-once stays the journal's job, and only
the driver writes the journal.

Workers read their sources themselves (a local path, or the remote URL and the ``FetchSettings`` they need to
open the store; credentials from the environment the driver passes to the job) and never through the driver;
prepared bytes come back through Ray's object store. Ray's own console output reaches the terminal only at
``-v`` with console logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import ray
import structlog

from pipeline.config import Settings
from pipeline.engines.engine import Admit
from pipeline.engines.work import Outcome, Task, warm, work, work_apart
from pipeline.errors import ConfigError
from pipeline.logs import debugging
from pipeline.models import Prepared

__all__ = ["STORE_ENV", "RayEngine", "store_env"]

log = structlog.get_logger("pipeline.runner")

STORE_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
             "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
             "AWS_CONFIG_FILE", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_BASE_URL", "GOOGLE_BEARER_TOKEN")
"""The environment variables a worker needs to open the stores the way the driver would (``fetch.stores``)."""

MAX_RETRIES = 3
"""Times Ray runs a task again after its worker or node died (a task is pure: running it twice is harmless)."""


def store_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The driver's store settings from ``STORE_ENV`` that are set: passed to the workers' environment."""
    env = dict(os.environ) if env is None else env
    return {name: env[name] for name in STORE_ENV if env.get(name)}


class RayEngine:
    """``work`` as Ray tasks (``fetches``: workers read remote sources themselves). ``slots`` is twice the
    cluster's CPUs. Made by ``open``; ``close`` disconnects, and stops a Ray this run started."""

    fetches = True

    def __init__(self, cpus: int, *, owned: bool, quiet: bool = True) -> None:
        self.cpus, self.owned, self.quiet = cpus, owned, quiet
        self.slots = max(2, 2 * cpus)
        self._remote: Any = ray.remote(work_apart).options(max_retries=MAX_RETRIES, retry_exceptions=False,
                                                           num_cpus=1, num_returns=2)
        # An audit's task has nothing to keep apart: one return, one object fewer per row.
        self._audit: Any = ray.remote(work).options(max_retries=MAX_RETRIES, retry_exceptions=False, num_cpus=1)
        # A new job gets new worker processes: start them (and their imports) now, while the driver opens the
        # journal and plans, rather than when the first images wait.
        self._warming = [ray.remote(warm).options(num_cpus=1).remote() for _ in range(cpus)]

    @classmethod
    def open(cls, settings: Settings, has_local: Callable[[], bool]) -> RayEngine:
        """Join the cluster (``--ray-address``, else ``RAY_ADDRESS``, else a local Ray for this run; a Ray
        already initialised in this process is used as it is). Raises ``ConfigError`` when the cluster cannot
        be reached, or has more than one node while the input names local files and ``--shared-fs`` is off."""
        owned = False
        quiet = not debugging() or settings.log_format == "json"  # JSON logs: every line is JSON, even at -v
        if not ray.is_initialized():
            # "local": always a new local Ray, never one a `ray start` left running on this machine.
            address = settings.ray_address or os.environ.get("RAY_ADDRESS") or "local"
            try:
                # Only a run that reads object stores hands their settings on: workers with a runtime
                # environment of their own are started for the job, not taken from those Ray keeps ready.
                env = store_env()
                with _quiet_stderr(quiet):
                    ray.init(address=address, log_to_driver=not quiet, include_dashboard=False,
                             logging_level=logging.WARNING if quiet else logging.INFO, configure_logging=True,
                             runtime_env={"env_vars": env} if env else None, ignore_reinit_error=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = "a local Ray" if address == "local" else address
                raise ConfigError(f"--engine ray could not start or join {where}: {_first_line(exc)}.") from exc
            owned = True
        try:
            state: Any = ray  # ray's state calls are untyped
            nodes = [n for n in state.nodes() if n.get("Alive")]
            cpus = int(state.cluster_resources().get("CPU", 0))
            if cpus < 1:
                raise ConfigError("--engine ray: the Ray cluster has no CPU to run tasks on.")
            if len(nodes) > 1 and not settings.shared_fs and has_local():
                raise ConfigError(
                    f"The Ray cluster has {len(nodes)} nodes and the input names local files, which the other "
                    "nodes may not see: use s3://, gs:// or https:// sources, or --shared-fs if every node "
                    "mounts the same files at the same paths.")
        except ConfigError:
            if owned:
                ray.shutdown()
            raise
        log.info("engine_ray", nodes=len(nodes), cpus=cpus)
        return cls(cpus, owned=owned, quiet=quiet)

    async def work(self, task: Task, admit: Admit) -> Outcome:
        """``work(task)`` on the cluster (``work_apart``: two returns). The small outcome comes first; a prepared
        image's bytes stay in Ray's object store until ``admit`` has room for them in the driver's budget (an
        audit never takes them). A cancelled call cancels its task. A task whose worker or node died is run
        again by Ray (``MAX_RETRIES``); past that, or on a bug in ``work``, the Ray error is raised (the run stops;
        its rows stay unfinished and a re-run does them)."""
        if not task.keep_data:
            return await self._one(self._audit.remote(task))
        head, data = self._remote.remote(task)
        try:
            outcome: Outcome = await head
            if task.keep_data and isinstance(outcome.out, Prepared) and outcome.size is not None:
                await admit(outcome.size)
                outcome = replace(outcome, out=replace(outcome.out, data=await data), size=None)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                ray.cancel(head, force=False)
            raise
        return outcome

    @staticmethod
    async def _one(ref: Any) -> Outcome:
        """The outcome of the task ``ref``; a cancelled wait cancels the task."""
        try:
            outcome: Outcome = await ref
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=False)
            raise
        return outcome

    def close(self) -> None:
        """Leave the cluster this engine joined: a local Ray started for the run stops, a cluster joined by
        address stays up; a Ray the caller had initialised is left as it was. Idempotent."""
        if self.owned and ray.is_initialized():
            with _quiet_stderr(self.quiet):
                ray.shutdown()
        self.owned = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


@contextlib.contextmanager
def _quiet_stderr(quiet: bool) -> Any:
    """Ray's start-up prints to the process's stderr (file descriptor 2) from C++ too: sent to /dev/null unless
    ``-v``, so the terminal shows the tool's own lines only."""
    if not quiet:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
