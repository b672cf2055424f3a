"""State that replicas share: locks, login throttles, short-lived caches.

Each kind is a small protocol with two implementations: one in this process
(the embedded default) and one in Redis (when `redis_url` is set), chosen in
`dockyard.services`. Every Redis key lives under `redis_prefix`.

Nothing here is ever the only copy of anything: the database is the source of
truth. If Redis loses its data, caches miss, throttles start again from zero
and locks are free; correctness holds.
"""
