import pytest

from dockyard.api.domain_errors import DOMAIN_ERRORS, api_error_for
from dockyard.api.errors import STATUS_CODES, BadRequest, Conflict, NotFound
from dockyard.grants import GrantError, RoleExists
from dockyard.projects import ProjectError, ProjectNotFound


def test_api_error_for_subclass_uses_its_own_entry_before_its_base():
    assert isinstance(api_error_for(RoleExists("role x exists")), Conflict)
    assert isinstance(api_error_for(GrantError("bad permission")), BadRequest)


def test_api_error_for_unlisted_subclass_uses_nearest_listed_base():
    class ProjectNameTaken(ProjectError):
        pass

    assert isinstance(api_error_for(ProjectNameTaken("taken")), BadRequest)


def test_api_error_for_keeps_the_message():
    error = api_error_for(ProjectNotFound("no project 'x'"))

    assert isinstance(error, NotFound)
    assert error.message == "no project 'x'"


def test_api_error_for_exception_outside_the_table_raises_lookup_error():
    with pytest.raises(LookupError):
        api_error_for(KeyError("k"))


def test_every_entry_names_a_code_with_a_status():
    assert {error.code for error in DOMAIN_ERRORS.values()} <= set(STATUS_CODES)
