from types import SimpleNamespace

from dockyard.db.database import Database
from dockyard.health import (
    ComponentAbsent,
    _component,
    check_database,
    describe_error,
)


async def test_database_check_on_unreachable_database_is_unhealthy(tmp_path):
    path = tmp_path / "dockyard.db"
    db = Database(f"sqlite:///{path}")
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    path.mkdir()  # no database can be opened there now
    try:
        result = await _component("database", check_database, SimpleNamespace(db=db))
    finally:
        await db.close()

    assert result["status"] == "unhealthy"
    assert result["error"].startswith("OperationalError")


async def test_absent_component_is_left_out():
    async def no_redis(services):
        raise ComponentAbsent

    assert await _component("redis", no_redis, None) is None


def test_describe_error_hides_url_credentials():
    error = ConnectionError("cannot reach redis://user:s3cret@host:6379/0")

    assert "s3cret" not in describe_error(error)
