import sqlite3

from dockyard.db.cache import ReadCache, SqliteDataVersion


async def test_read_cache_serves_value_until_another_connection_commits(tmp_path):
    path = tmp_path / "db.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (v INTEGER)")
    writer.execute("INSERT INTO t VALUES (1)")
    cache = ReadCache(SqliteDataVersion(path))
    loads = []

    async def load():
        value = writer.execute("SELECT max(v) FROM t").fetchone()[0]
        loads.append(value)
        return value

    first = await cache.get_or_load("k", load)
    cached = await cache.get_or_load("k", load)
    writer.execute("INSERT INTO t VALUES (2)")
    after_commit = await cache.get_or_load("k", load)

    assert (first, cached, after_commit) == (1, 1, 2)
    assert loads == [1, 2]


async def test_read_cache_without_generation_never_caches():
    cache = ReadCache(None)
    calls = []

    async def load():
        calls.append(1)
        return len(calls)

    assert [await cache.get_or_load("k", load) for _ in range(3)] == [1, 2, 3]


class CountingGeneration:
    """A generation that moves only when told to (as a shared counter would)."""

    def __init__(self):
        self.value = 0

    async def current(self):
        return self.value

    async def advance(self):
        self.value += 1

    def close(self):
        pass


async def test_read_cache_invalidate_advances_generation_and_reloads():
    generation = CountingGeneration()
    cache = ReadCache(generation)
    values = iter([1, 2])

    async def load():
        return next(values)

    first = await cache.get_or_load("k", load)
    await cache.invalidate()
    after_write = await cache.get_or_load("k", load)

    assert (first, after_write) == (1, 2)
    assert generation.value == 1
