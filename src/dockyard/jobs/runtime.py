"""Running the scheduler and workers: inside `dockyard serve` or on their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from dockyard.jobs import builtin
from dockyard.jobs.scheduler import Scheduler
from dockyard.jobs.worker import Worker

if TYPE_CHECKING:
    from dockyard.config import Settings
    from dockyard.services import Services

log = logging.getLogger(__name__)


def job_loops(services: Services, worker: bool) -> list[Coroutine[Any, Any, None]]:
    """The scheduler, and with `worker` a worker, as coroutines to run until
    cancelled."""
    settings = services.settings
    loops = [
        Scheduler(
            services.jobs,
            services.locks,
            builtin.schedules(settings),
            services.replication.schedules,
            report_depth=lambda depth: services.metrics.set_queue_depth("jobs", depth),
        ).run()
    ]
    if worker:
        loops.append(
            Worker(
                services, services.jobs, builtin.HANDLERS, settings.jobs.concurrency
            ).run()
        )
    return loops


async def run_worker(settings: Settings) -> None:
    """`dockyard worker`: run the scheduler and a worker until SIGTERM or SIGINT;
    a task running then ends Stopped."""
    from dockyard.services import build_services

    services = build_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(c) for c in job_loops(services, worker=True)]
    log.info("worker_started concurrency=%d", settings.jobs.concurrency)
    try:
        await stop.wait()
    finally:
        await stop_tasks(tasks)
        await services.close()
        log.info("worker_stopped")


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks` (loops that run until cancelled) and wait until each
    has ended, so that nothing they hold is closed under them."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
