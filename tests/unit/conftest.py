"""Fixtures of the unit suites that run one test body on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from dockyard.state.store import RedisStore


@pytest_asyncio.fixture(loop_scope="function")
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    """A store on the real Redis, under this test's own prefix."""
    store = RedisStore(redis_url, redis_prefix)
    try:
        yield store
    finally:
        await store.close()
