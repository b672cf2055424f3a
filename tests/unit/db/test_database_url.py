import pytest

from dockyard.config import ConfigError, load_settings, normalise_database_url


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://u:p@db:5432/dockyard",
        "postgres://u:p@db:5432/dockyard",
        "postgresql+asyncpg://u:p@db:5432/dockyard",
    ],
)
def test_postgresql_url_schemes_select_asyncpg(given):
    assert normalise_database_url(given) == "postgresql+asyncpg://u:p@db:5432/dockyard"


def test_sqlite_url_is_kept():
    assert normalise_database_url("sqlite:////var/x.db") == "sqlite:////var/x.db"


@pytest.mark.parametrize("given", ["mysql://db/x", "dockyard", "postgresql:///x"])
def test_unusable_database_url_is_a_configuration_error(given, monkeypatch):
    monkeypatch.setenv("DOCKYARD_DATABASE_URL", given)

    with pytest.raises(ConfigError, match="DOCKYARD_DATABASE_URL"):
        load_settings()
