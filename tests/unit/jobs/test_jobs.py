"""Executions, tasks, the worker and the scheduler on a real SQLite database,
with the in-process and the Redis queue and locks."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from dockyard.db.database import Database
from dockyard.db.migrate import upgrade_database
from dockyard.db.schema import job_executions, job_tasks
from dockyard.jobs.queue import MemoryQueue, RedisQueue
from dockyard.jobs.records import (
    ERROR,
    PENDING,
    STOPPED,
    SUCCESS,
    JobService,
    TaskFailed,
)
from dockyard.jobs.scheduler import Scheduler
from dockyard.jobs.schedules import Schedule
from dockyard.jobs.worker import Worker
from dockyard.state.locks import MemoryLocks, RedisLocks


@pytest.fixture
def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'dockyard.db'}"
    upgrade_database(url)
    db = Database(url)
    yield db
    db.cache.close()


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    """(make_queue, locks): the queue and the locks one deployment shares."""
    if request.param == "memory":
        queue = MemoryQueue()
        return (lambda: queue), MemoryLocks()
    store = request.getfixturevalue("store")
    return (lambda: RedisQueue(store)), RedisLocks(store)


def an_hour_ago():
    return datetime.now(UTC) - timedelta(hours=1)


async def run_until(condition, *coroutines, timeout=20.0):
    """Run `coroutines` until `condition()` (async) holds; then cancel them.
    A coroutine that does not stop once cancelled fails the test (rather than
    hanging it)."""
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.05)
    finally:
        await cancel_and_wait(tasks)


async def cancel_and_wait(tasks, timeout=20.0):
    """Cancel `tasks`; fail if one is still running `timeout` seconds later."""
    for task in tasks:
        task.cancel()
    _, running = await asyncio.wait(tasks, timeout=timeout)
    assert not running, f"still running after cancel: {running}"
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()


class QueueLosingCancellations(MemoryQueue):
    """A queue whose push and pop lose a cancellation that comes while they
    wait, as redis-py's command sends do on Python 3.11 (`asyncio.wait_for`
    returning normally when the send completes as the task is cancelled)."""

    def __init__(self):
        super().__init__()
        self.busy = asyncio.Event()

    async def push(self, task_id):
        await self._wait_ignoring_cancellation(0.5)
        await super().push(task_id)

    async def pop(self, timeout):
        await self._wait_ignoring_cancellation(timeout)
        return await super().pop(0.01)

    async def _wait_ignoring_cancellation(self, seconds):
        self.busy.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(seconds)


async def test_submitted_job_runs_on_a_worker_and_records_its_log(database, backend):
    make_queue, _ = backend
    jobs = JobService(database, make_queue())

    async def greet(context):
        context.log(f"hello {context.params['name']}")

    worker = Worker(None, JobService(database, make_queue()), {"GREET": greet})
    execution_id = await jobs.submit("GREET", {"name": "dock"})

    async def done():
        return (await jobs.execution(execution_id))["status"] == SUCCESS

    await run_until(done, worker.run())
    execution = await jobs.execution(execution_id)

    assert [t["status"] for t in execution["tasks"]] == [SUCCESS]
    assert "hello dock" in execution["tasks"][0]["log"]


async def test_failing_handler_ends_task_and_execution_in_error(database, backend):
    make_queue, _ = backend
    jobs = JobService(database, make_queue())

    async def broken(context):
        raise RuntimeError("disk on fire")

    execution_id = await jobs.submit("BROKEN", tasks=[{}, {}])

    async def done():
        return (await jobs.execution(execution_id))["ended_at"] is not None

    await run_until(done, Worker(None, jobs, {"BROKEN": broken}).run())
    execution = await jobs.execution(execution_id)

    assert execution["status"] == ERROR
    assert "disk on fire" in execution["tasks"][0]["status_message"]


async def _run_one(jobs, job_type, handler):
    """Run one task of `job_type` on a worker; the finished task."""
    execution_id = await jobs.submit(job_type)
    task_id = (await jobs.execution(execution_id))["tasks"][0]["id"]
    await Worker(None, jobs, {job_type: handler}).run_task(task_id)
    return (await jobs.execution(execution_id))["tasks"][0]


async def test_expected_failure_ends_task_with_one_log_line_and_a_warning(
    database, caplog
):
    jobs = JobService(database, MemoryQueue())

    async def refused(context):
        context.log("trying")
        raise TaskFailed("CopyFailed: the registry said no")

    with caplog.at_level("WARNING", logger="dockyard.jobs.worker"):
        task = await _run_one(jobs, "REFUSED", refused)

    assert task["status"] == ERROR
    assert task["status_message"] == "CopyFailed: the registry said no"
    lines = task["log"].splitlines()
    assert len(lines) == 2 and lines[1].endswith(
        " failed: CopyFailed: the registry said no"
    )
    assert [(r.levelname, r.exc_info) for r in caplog.records] == [("WARNING", None)]


async def test_unexpected_exception_keeps_its_traceback_and_logs_an_error(
    database, caplog
):
    jobs = JobService(database, MemoryQueue())

    async def broken(context):
        raise KeyError("step")

    with caplog.at_level("WARNING", logger="dockyard.jobs.worker"):
        task = await _run_one(jobs, "BROKEN", broken)

    assert task["status"] == ERROR
    assert "Traceback (most recent call last)" in task["log"]
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert caplog.records[0].exc_info is not None


async def test_task_claimed_twice_runs_once(database, backend):
    make_queue, _ = backend
    jobs = JobService(database, make_queue())
    runs = []

    async def count(context):
        runs.append(context.task.id)

    execution_id = await jobs.submit("COUNT")
    task_id = (await jobs.execution(execution_id))["tasks"][0]["id"]
    await jobs.queue.push(task_id)  # the same task offered twice

    await Worker(None, jobs, {"COUNT": count}).run_task(task_id)
    await Worker(None, jobs, {"COUNT": count}).run_task(task_id)

    assert runs == [task_id]


async def test_stopped_worker_ends_its_running_task_stopped(database, backend):
    make_queue, _ = backend
    jobs = JobService(database, make_queue())
    started = asyncio.Event()

    async def slow(context):
        started.set()
        await asyncio.sleep(60)

    execution_id = await jobs.submit("SLOW")
    worker = asyncio.create_task(Worker(None, jobs, {"SLOW": slow}).run())
    await asyncio.wait_for(started.wait(), 10)
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker

    assert (await jobs.execution(execution_id))["status"] == STOPPED


async def test_upkeep_requeues_a_task_whose_queue_item_was_lost(database, backend):
    make_queue, locks = backend
    jobs = JobService(database, make_queue())
    execution_id = await jobs.submit("NOOP")
    await make_queue().pop(timeout=1)  # the item is lost (e.g. Redis flushed)
    async with database.write() as conn:
        await conn.execute(update(job_tasks).values(queued_at=an_hour_ago()))

    async def noop(context):
        pass

    async def done():
        return (await jobs.execution(execution_id))["status"] == SUCCESS

    await run_until(
        done,
        Scheduler(jobs, locks, []).run(),
        Worker(None, jobs, {"NOOP": noop}).run(),
    )

    assert (await jobs.execution(execution_id))["tasks"][0]["run_count"] == 1


async def test_upkeep_fails_a_task_whose_worker_went_silent(database, backend):
    make_queue, _ = backend
    jobs = JobService(database, make_queue())
    execution_id = await jobs.submit("LOST")
    task_id = (await jobs.execution(execution_id))["tasks"][0]["id"]
    await jobs.claim(task_id, "gone:1")
    async with database.write() as conn:
        await conn.execute(update(job_tasks).values(heartbeat_at=an_hour_ago()))

    lost = await jobs.fail_lost(timedelta(minutes=1))

    assert lost == 1
    assert (await jobs.execution(execution_id))["status"] == ERROR


async def test_two_schedulers_fire_each_tick_once(database, backend):
    make_queue, locks = backend
    every_second = [Schedule("tick", "NOOP", "* * * * * *")]
    schedulers = [
        Scheduler(JobService(database, make_queue()), locks, every_second)
        for _ in range(2)
    ]

    async def three_ticks():
        async with database.read() as conn:
            ticks = (await conn.scalars(select(job_executions.c.scheduled_for))).all()
        return len(ticks) >= 3

    await run_until(three_ticks, *(s.run() for s in schedulers))
    async with database.read() as conn:
        ticks = (await conn.scalars(select(job_executions.c.scheduled_for))).all()

    assert len(ticks) == len(set(ticks))
    assert all(tick.microsecond == 0 for tick in ticks)


LOOPS = {
    "scheduler": lambda jobs: Scheduler(
        jobs, MemoryLocks(), [Schedule("tick", "NOOP", "* * * * * *")]
    ),
    "worker": lambda jobs: Worker(None, jobs, {}, concurrency=2),
}


@pytest.mark.parametrize("loop", LOOPS)
async def test_loop_stops_when_a_queue_call_loses_its_cancellation(database, loop):
    queue = QueueLosingCancellations()
    task = asyncio.create_task(LOOPS[loop](JobService(database, queue)).run())
    async with asyncio.timeout(20):
        await queue.busy.wait()

    await cancel_and_wait([task])

    assert task.cancelled()


async def test_scheduled_tick_already_recorded_is_not_recorded_again(database):
    jobs = JobService(database, MemoryQueue())
    schedule = Schedule("tick", "NOOP", "* * * * * *")
    tick = schedule.latest_tick(datetime.now(UTC))

    first = await jobs.submit_scheduled("NOOP", "tick", tick, {})
    second = await jobs.submit_scheduled("NOOP", "tick", tick, {})

    assert first is not None and second is None
    assert (await jobs.execution(first))["status"] == PENDING


async def test_task_adding_tasks_runs_them_in_the_same_execution(database):
    queue = MemoryQueue()
    jobs = JobService(database, queue)

    async def plan(context):
        if context.params.get("step") == "plan":
            await context.services.add_tasks(
                context.task.execution_id, [{"step": "a"}, {"step": "b"}]
            )
        else:
            context.log(f"did {context.params['step']}")

    # The handler reaches the job service through `services` here.
    worker = Worker(jobs, jobs, {"PLAN": plan})
    execution_id = await jobs.submit("PLAN", {"step": "plan"}, owner="thing:1")

    async def done():
        return (await jobs.execution(execution_id))["status"] == SUCCESS

    await run_until(done, worker.run())
    execution = await jobs.execution(execution_id)

    assert [t["status"] for t in execution["tasks"]] == [SUCCESS] * 3
    assert execution["owner"] == "thing:1"


async def test_stopped_execution_leaves_pending_tasks_unrun(database):
    jobs = JobService(database, MemoryQueue())
    execution_id = await jobs.submit("NOTHING", tasks=[{}, {}], owner="thing:2")

    stopped = await jobs.stop_execution(execution_id)

    execution = await jobs.execution(execution_id)
    assert stopped and execution["status"] == STOPPED
    assert [t["status"] for t in execution["tasks"]] == [STOPPED, STOPPED]
    assert await jobs.add_tasks(execution_id, [{}]) == []
    assert not await jobs.has_unfinished("thing:2")
