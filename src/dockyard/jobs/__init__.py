"""Background jobs: executions and tasks, a queue, workers and a scheduler.

    submit ──> job_executions + job_tasks rows (status Pending) ──> queue
    worker: pop a task id ──> claim the row (Pending -> Running, atomic)
            ──> run the job type's handler ──> Success | Error | Stopped
    scheduler (one lock holder among all processes): for each schedule,
            at each cron tick, submit one execution (unique per tick)

The database is the record of every job: what to run, its status, start and
end, and each task's log. The queue only tells workers which task to claim
next, so a queue that loses an item (Redis restarted, a process died with
items in its memory queue) delays the task, never loses it: the scheduler's
upkeep pushes tasks that stayed Pending again, and marks tasks whose worker
stopped sending heartbeats as failed. Claims are atomic in the database, so
a task pushed twice still runs once.

Embedded (no `redis_url`): `dockyard serve` runs the scheduler and a worker
in-process on a memory queue. Scaled: the queue is a Redis list, HTTP
replicas may leave the worker off (`jobs.embedded_worker: false`) and
`dockyard worker` processes consume it.
"""
