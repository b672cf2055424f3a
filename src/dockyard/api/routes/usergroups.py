"""`/usergroups`: groups that can be project members.

Harbor's endpoints, with Harbor's rule that only system admins list and
read groups (any user may search them, to add one as a member), plus
Dockyard's `/usergroups/{group_id}/users`, which puts local users into a
group so groups also work with database logins.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Select, select

from dockyard.api.deps import (
    AdminDep,
    DbInt,
    Page,
    PageDep,
    ServicesDep,
    UserDep,
    paginated,
)
from dockyard.api.query import apply_query
from dockyard.db.schema import user_groups
from dockyard.groups import Group, GroupService

router = APIRouter(tags=["usergroup"])

_QUERY_COLUMNS = {
    "group_name": user_groups.c.group_name,
    "group_type": user_groups.c.group_type,
    "id": user_groups.c.id,
}


class UserGroupReq(BaseModel):
    group_name: str = Field(min_length=1, max_length=255)
    group_type: DbInt = 2
    ldap_group_dn: str = Field(default="", max_length=512)


class GroupUserReq(BaseModel):
    user_id: DbInt


@router.get("/usergroups")
async def list_groups(
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
    page: PageDep,
    group_name: str | None = None,
    ldap_group_dn: str | None = None,
    q: str | None = None,
    sort: str | None = None,
) -> Response:
    query = select(user_groups)
    if group_name:
        query = query.where(
            user_groups.c.group_name.contains(group_name, autoescape=True)
        )
    if ldap_group_dn:
        query = query.where(user_groups.c.ldap_group_dn == ldap_group_dn)
    query = apply_query(query, q, sort, _QUERY_COLUMNS, [user_groups.c.id])
    return await _page(request, services.groups, query, page)


@router.get("/usergroups/search")
async def search_groups(
    request: Request,
    services: ServicesDep,
    user: UserDep,
    page: PageDep,
    groupname: str = "",
) -> Response:
    query = (
        select(user_groups)
        .where(user_groups.c.group_name.contains(groupname, autoescape=True))
        .order_by(user_groups.c.group_name)
    )
    return await _page(request, services.groups, query, page)


@router.post("/usergroups", status_code=201)
async def create_group(
    body: UserGroupReq, services: ServicesDep, admin: AdminDep
) -> Response:
    group = await services.groups.create_group(
        body.group_name, body.group_type, body.ldap_group_dn, admin.username
    )
    return Response(
        status_code=201, headers={"location": f"/api/v2.0/usergroups/{group.id}"}
    )


@router.get("/usergroups/{group_id}")
async def get_group(group_id: DbInt, services: ServicesDep, admin: AdminDep) -> dict:
    return _group_resp(await services.groups.get_group(group_id))


@router.put("/usergroups/{group_id}")
async def update_group(
    group_id: DbInt, body: UserGroupReq, services: ServicesDep, admin: AdminDep
) -> Response:
    await services.groups.get_group(group_id)
    await services.groups.rename_group(group_id, body.group_name, admin.username)
    return Response(status_code=200)


@router.delete("/usergroups/{group_id}")
async def delete_group(
    group_id: DbInt, services: ServicesDep, admin: AdminDep
) -> Response:
    await services.groups.get_group(group_id)
    await services.groups.delete_group(group_id, admin.username)
    return Response(status_code=200)


@router.get("/usergroups/{group_id}/users")
async def list_group_users(
    group_id: DbInt, services: ServicesDep, admin: AdminDep
) -> list[dict[str, Any]]:
    await services.groups.get_group(group_id)
    return [
        {"user_id": row["id"], "username": row["username"]}
        for row in await services.groups.list_users(group_id)
    ]


@router.post("/usergroups/{group_id}/users", status_code=201)
async def add_group_user(
    group_id: DbInt, body: GroupUserReq, services: ServicesDep, admin: AdminDep
) -> Response:
    await services.groups.get_group(group_id)
    await services.users.get_user(body.user_id)
    await services.groups.add_user(group_id, body.user_id, admin.username)
    return Response(status_code=201)


@router.delete("/usergroups/{group_id}/users/{user_id}")
async def remove_group_user(
    group_id: DbInt, user_id: DbInt, services: ServicesDep, admin: AdminDep
) -> Response:
    await services.groups.get_group(group_id)
    await services.groups.remove_user(group_id, user_id, admin.username)
    return Response(status_code=200)


async def _page(
    request: Request, groups: GroupService, query: Select, page: Page
) -> Response:
    total = await groups.count(query)
    found = await groups.list_groups(query, page.offset, page.size)
    return paginated(request, [_group_resp(g) for g in found], total, page)


def _group_resp(group: Group) -> dict[str, Any]:
    return {
        "id": group.id,
        "group_name": group.group_name,
        "group_type": group.group_type,
        "ldap_group_dn": group.ldap_group_dn,
    }
