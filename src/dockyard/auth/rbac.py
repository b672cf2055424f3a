"""The permission catalogue and Harbor's five project roles as sets of it.

A permission is a (resource, action) pair inside one project, named as
Harbor names them, so that `/users/current/permissions` reads the same and a
robot's permission list carries over. The builtin roles are rows of the
`roles` table; their permissions are written from `BUILTIN_ROLES` at start-up
(`sync_builtin_roles`), while custom roles are whatever an admin stored.

Registry actions map onto the catalogue: `pull` is (repository, pull), `push`
is (repository, push) and `delete` is (artifact, delete).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.auth.roles import DELETE, PULL, PUSH, Role
from dockyard.db.database import move_id_sequence_past_rows
from dockyard.db.schema import role_permissions, roles

Permission = tuple[str, str]

PROJECT_SELF = ""  # Harbor's name for the project itself as a resource.
# ... in permission lists (robots, `/permissions`), where Harbor calls it
# `project` and maps it onto the project's own path.
LISTED_PROJECT_SELF = "project"


def listed_resource(resource: str) -> str:
    """A project resource as Harbor's permission lists name it."""
    return LISTED_PROJECT_SELF if resource == PROJECT_SELF else resource


def catalogue_resource(resource: str) -> str:
    """A project resource from a permission list, as the catalogue names it
    (accepting the catalogue's own empty name too)."""
    return PROJECT_SELF if resource == LISTED_PROJECT_SELF else resource


# Who holds each (resource, action): A project admin, M maintainer,
# D developer, G guest, L limited guest. As in Harbor 2.13+
# (src/common/rbac/project/rbac_role.go): project logs are the project
# admin's alone, a maintainer only reads metadata, a developer runs tag
# retention, a limited guest reads repositories.
_MATRIX: dict[str, dict[str, str]] = {
    PROJECT_SELF: {"read": "AMDGL", "update": "A", "delete": "A"},
    "member": {"create": "A", "read": "AMDG", "update": "A", "delete": "A",
               "list": "AMDG"},
    # No role lists all keys at once: as in Harbor, that is for system admins
    # and robots granted metadata list; members read one key at a time.
    "metadata": {"create": "A", "read": "AM", "update": "A", "delete": "A",
                 "list": ""},
    "log": {"list": "A"},
    "label": {"create": "AM", "read": "AMDG", "update": "AM", "delete": "AM",
              "list": "AMDG"},
    "quota": {"read": "AMDGL"},
    "repository": {"create": "AMD", "read": "AMDGL", "update": "AMD",
                   "delete": "AM", "list": "AMDGL", "pull": "AMDGL",
                   "push": "AMD"},
    "tag-retention": {"create": "AMD", "read": "AMD", "update": "AMD",
                      "delete": "AMD", "list": "AMD", "operate": "AMD"},
    "immutable-tag": {"create": "AM", "update": "AM", "delete": "AM",
                      "list": "AM"},
    "configuration": {"read": "AMDGL", "update": "A"},
    "robot": {"create": "A", "read": "AMDG", "update": "A", "delete": "A",
              "list": "AMDG"},
    "notification-policy": {"create": "A", "read": "AM", "update": "A",
                            "delete": "A", "list": "AM"},
    "scan": {"create": "AM", "read": "AMDGL", "stop": "AM"},
    "sbom": {"create": "AM", "read": "AMDGL", "stop": "AM"},
    "scanner": {"create": "A", "read": "AMDGL"},
    "artifact": {"create": "AMD", "read": "AMDGL", "delete": "AM",
                 "list": "AMDGL"},
    "artifact-addition": {"read": "AMDGL"},
    "tag": {"create": "AMD", "delete": "AM", "list": "AMDGL"},
    "accessory": {"list": "AMDGL"},
    "artifact-label": {"create": "AMD", "delete": "AMD"},
    "preheat-policy": {"create": "A", "read": "A", "update": "A",
                       "delete": "A", "list": "A"},
    "export-cve": {"create": "AMD", "read": "AMD", "list": "AMD"},
}  # fmt: skip

_LETTERS = {
    "A": Role.PROJECT_ADMIN,
    "M": Role.MAINTAINER,
    "D": Role.DEVELOPER,
    "G": Role.GUEST,
    "L": Role.LIMITED_GUEST,
}

PROJECT_PERMISSIONS: frozenset[Permission] = frozenset(
    (resource, action) for resource, actions in _MATRIX.items() for action in actions
)
"""Every permission a project role (builtin or custom) can hold."""

BUILTIN_ROLES: dict[Role, frozenset[Permission]] = {
    role: frozenset(
        (resource, action)
        for resource, actions in _MATRIX.items()
        for action, holders in actions.items()
        if letter in holders
    )
    for letter, role in _LETTERS.items()
}

PUBLIC_PROJECT: frozenset[Permission] = frozenset(
    {
        (PROJECT_SELF, "read"),
        ("label", "read"),
        ("label", "list"),
        ("repository", "list"),
        ("repository", "pull"),
        ("scan", "read"),
        ("scanner", "read"),
        ("tag", "list"),
        ("artifact", "read"),
        ("artifact", "list"),
        ("artifact-addition", "read"),
        ("accessory", "list"),
    }
)
"""What anyone, anonymous included, may do in a public project: Harbor's set
for public projects, exactly. Not (repository, read), so reading one
repository's record, nor (sbom, read): members' roles give those."""

REPOSITORY_RESOURCES = frozenset(
    {
        "repository",
        "artifact",
        "artifact-addition",
        "artifact-label",
        "tag",
        "accessory",
        "scan",
        "sbom",
    }
)
"""Resources a repository-scoped grant can reach; the rest are project-wide."""

SYSTEM_PERMISSIONS: frozenset[Permission] = frozenset(
    (resource, action)
    for resource, actions in {
        "audit-log": ("list",),
        "catalog": ("read",),
        "project": ("create", "list"),
        "user": ("create", "read", "update", "delete", "list"),
        "user-group": ("create", "read", "update", "delete", "list"),
        "label": ("create", "read", "update", "delete", "list"),
        "robot": ("create", "read", "update", "delete", "list"),
        "quota": ("read", "update", "list"),
        "configuration": ("read", "update"),
        "role": ("create", "read", "update", "delete", "list"),
    }.items()
    for action in actions
)
"""System-level permissions a system robot can hold (the `system` kind)."""

_REGISTRY_ACTIONS: dict[str, Permission] = {
    PULL: ("repository", "pull"),
    PUSH: ("repository", "push"),
    DELETE: ("artifact", "delete"),
}


def registry_actions(held: frozenset[Permission]) -> frozenset[str]:
    """The `/v2` token actions a set of permissions allows.

    `*` (every action) is granted to whoever holds all three.
    """
    actions = {action for action, needs in _REGISTRY_ACTIONS.items() if needs in held}
    if len(actions) == len(_REGISTRY_ACTIONS):
        actions.add("*")
    return frozenset(actions)


async def sync_builtin_roles(conn: AsyncConnection) -> None:
    """Make the builtin roles' stored permissions match `BUILTIN_ROLES`."""
    now = datetime.now(UTC)
    stored = set(
        (await conn.execute(select(roles.c.id).where(roles.c.builtin.is_(True))))
        .scalars()
        .all()
    )
    for role, permissions in BUILTIN_ROLES.items():
        if int(role) not in stored:
            await conn.execute(
                insert(roles).values(
                    id=int(role),
                    name=role.key,
                    builtin=True,
                    created_at=now,
                    updated_at=now,
                )
            )
        await conn.execute(
            delete(role_permissions).where(role_permissions.c.role_id == int(role))
        )
        await conn.execute(
            insert(role_permissions),
            [
                {"role_id": int(role), "resource": resource, "action": action}
                for resource, action in sorted(permissions)
            ],
        )
    # Builtin roles keep Harbor's ids; custom roles must be numbered after them.
    await move_id_sequence_past_rows(conn, roles)
