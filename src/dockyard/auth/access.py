"""What a principal may do to a repository: roles and project visibility.

The token service asks this when it issues a token (the token then carries
the intersection of what was asked and what is allowed); `/v2` asks it
directly for requests authenticated with HTTP Basic.
"""

from __future__ import annotations

from dockyard.auth.principals import Principal
from dockyard.auth.roles import ADMIN_ACTIONS, PULL, ROLE_ACTIONS
from dockyard.auth.scopes import Scope
from dockyard.projects import ProjectService
from dockyard.registry.reference import is_valid_name, project_of

NO_ACTIONS: frozenset[str] = frozenset()
CATALOG_SCOPE = ("registry", "catalog")


class AccessPolicy:
    def __init__(self, projects: ProjectService) -> None:
        self.projects = projects

    async def allowed_actions(
        self, principal: Principal, repository: str
    ) -> frozenset[str]:
        """The registry actions `principal` may take on `repository`.

        Nothing is allowed in a project that does not exist, not even to an
        admin: a repository cannot live outside a project.
        """
        return await self.project_actions(principal, project_of(repository))

    async def project_actions(
        self, principal: Principal, project_name: str
    ) -> frozenset[str]:
        """The actions `principal` may take in every repository of a project."""
        project = await self.projects.find_project(project_name)
        if project is None:
            return NO_ACTIONS
        if principal.sysadmin:
            return ADMIN_ACTIONS
        allowed = {PULL} if project.public else set()
        if principal.user_id is not None:
            role = await self.projects.member_role(project.id, principal.user_id)
            if role is not None:
                allowed |= ROLE_ACTIONS[role]
        return frozenset(allowed)

    async def grant(self, principal: Principal, requested: list[Scope]) -> list[Scope]:
        """Each requested scope cut down to what `principal` is allowed."""
        granted = []
        for scope in requested:
            if scope.type == "repository" and is_valid_name(scope.name):
                allowed = await self.allowed_actions(principal, scope.name)
                actions = _expand(scope.actions, allowed)
            elif (scope.type, scope.name) == CATALOG_SCOPE:
                # Anyone may list the catalog; the listing shows only what the
                # caller can pull.
                actions = scope.actions & {"*"}
            else:
                actions = NO_ACTIONS
            if actions:
                granted.append(Scope(scope.type, scope.name, actions))
        return granted


def _expand(asked: frozenset[str], allowed: frozenset[str]) -> frozenset[str]:
    # "*" in a request means every action the caller holds.
    if "*" in asked and "*" in allowed:
        return allowed
    return asked & allowed
