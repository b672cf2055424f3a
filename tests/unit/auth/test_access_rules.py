"""Repository patterns of grants, and the builtin roles' registry actions."""

from __future__ import annotations

import pytest

from dockyard.auth.access import is_valid_pattern, pattern_matches
from dockyard.auth.rbac import BUILTIN_ROLES, PROJECT_PERMISSIONS, registry_actions
from dockyard.auth.roles import Role


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("web", "web", True),
        ("web", "web2", False),
        ("team-a/*", "team-a/web", True),
        ("team-a/*", "team-a/db/main", False),
        ("team-a/**", "team-a/db/main", True),
        ("team-a/**", "team-b/web", False),
        ("*-cache", "npm-cache", True),
        ("v?", "v1", True),
        ("v?", "v10", False),
        ("a.b", "axb", False),
    ],
)
def test_pattern_matches_globs_by_path_component(pattern, name, matches):
    assert pattern_matches(pattern, name) is matches


@pytest.mark.parametrize("pattern", ["", "/", "a//b", "../x", "A", "a b", "x;y"])
def test_invalid_patterns_are_refused(pattern):
    assert not is_valid_pattern(pattern)


@pytest.mark.parametrize(
    ("role", "actions"),
    [
        (Role.PROJECT_ADMIN, {"pull", "push", "delete", "*"}),
        (Role.MAINTAINER, {"pull", "push", "delete", "*"}),
        (Role.DEVELOPER, {"pull", "push"}),
        (Role.GUEST, {"pull"}),
        (Role.LIMITED_GUEST, {"pull"}),
    ],
)
def test_builtin_roles_map_to_registry_actions(role, actions):
    assert registry_actions(BUILTIN_ROLES[role]) == actions


def test_project_admin_holds_every_project_permission_but_listing_metadata():
    # As in Harbor, listing every metadata key at once is no role's.
    missing = PROJECT_PERMISSIONS - BUILTIN_ROLES[Role.PROJECT_ADMIN]

    assert missing == {("metadata", "list")}
