"""`/users`: local accounts, the current user, passwords, the admin flag."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, StrictBool

from dockyard.api.deps import (
    AdminDep,
    CallerDep,
    DbInt,
    PageDep,
    ServicesDep,
    UserDep,
    paginated,
)
from dockyard.api.errors import BadRequest, Forbidden, Unauthorized
from dockyard.api.query import apply_query
from dockyard.auth.principals import Principal
from dockyard.db.database import contains_text
from dockyard.db.schema import users

router = APIRouter(tags=["user"])

_QUERY_COLUMNS = {
    "username": users.c.username,
    "email": users.c.email,
    "realname": users.c.realname,
    "creation_time": users.c.created_at,
    "update_time": users.c.updated_at,
    "user_id": users.c.id,
}


class UserCreationReq(BaseModel):
    username: str = Field(min_length=1, max_length=255)
    password: str
    email: str | None = Field(default=None, max_length=255)
    realname: str | None = Field(default=None, max_length=255)
    comment: str | None = Field(default=None, max_length=1024)


class UserProfile(BaseModel):
    email: str | None = Field(default=None, max_length=255)
    realname: str | None = Field(default=None, max_length=255)
    comment: str | None = Field(default=None, max_length=1024)


class PasswordReq(BaseModel):
    old_password: str | None = None
    new_password: str


class SysAdminFlag(BaseModel):
    sysadmin_flag: StrictBool


def user_resp(row: dict[str, Any]) -> dict[str, Any]:
    """Harbor's UserResp: empty optional fields are left out, as Harbor does."""
    body = {
        "user_id": row["id"],
        "username": row["username"],
        "sysadmin_flag": bool(row["sysadmin"]),
        "admin_role_in_auth": False,
        "creation_time": harbor_time(row["created_at"]),
        "update_time": harbor_time(row["updated_at"]),
    }
    for field in ("email", "realname", "comment"):
        if row[field]:
            body[field] = row[field]
    return body


def harbor_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@router.get("/users")
async def list_users(
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
) -> Response:
    query = apply_query(users.select(), q, sort, _QUERY_COLUMNS)
    rows, total = await services.users.list_users(query, page.offset, page.size)
    return paginated(request, [user_resp(row) for row in rows], total, page)


@router.get("/users/search")
async def search_users(
    request: Request,
    services: ServicesDep,
    user: UserDep,
    page: PageDep,
    username: Annotated[str, Query(min_length=1)],
) -> Response:
    query = users.select().where(contains_text(users.c.username, username))
    rows, total = await services.users.list_users(
        query.order_by(users.c.username), page.offset, page.size
    )
    items = [{"user_id": row["id"], "username": row["username"]} for row in rows]
    return paginated(request, items, total, page)


@router.get("/users/current")
async def current_user(services: ServicesDep, user: UserDep) -> dict[str, Any]:
    if user.user_id is None:
        raise Forbidden("robot accounts have no user profile")
    return user_resp(await services.users.get_user(user.user_id))


@router.post("/users", status_code=201)
async def create_user(
    body: UserCreationReq, services: ServicesDep, caller: CallerDep
) -> Response:
    """Admins create users; anyone may sign up while self-registration is on."""
    if not caller.sysadmin and not await services.configurations.get(
        "self_registration"
    ):
        if caller.anonymous:
            raise Unauthorized("authentication required")
        raise Forbidden("only system administrators may create users")
    prefix = await services.configurations.get("robot_name_prefix")
    if body.username.startswith(prefix):
        raise BadRequest(f"user names may not start with {prefix!r} (robot accounts)")
    user_id = await services.users.create_user(
        body.username,
        body.password,
        email=body.email,
        realname=body.realname,
        comment=body.comment,
        actor=caller.username or body.username,
    )
    return Response(status_code=201, headers={"location": f"/api/v2.0/users/{user_id}"})


@router.get("/users/{user_id}")
async def get_user(
    user_id: DbInt, services: ServicesDep, user: UserDep
) -> dict[str, Any]:
    _require_self_or_admin(user, user_id)
    return user_resp(await services.users.get_user(user_id))


@router.put("/users/{user_id}")
async def update_user(
    user_id: DbInt, body: UserProfile, services: ServicesDep, user: UserDep
) -> Response:
    _require_self_or_admin(user, user_id)
    await services.users.get_user(user_id)
    await services.users.update_profile(
        user_id,
        user.username,
        email=body.email,
        realname=body.realname,
        comment=body.comment,
    )
    return Response(status_code=200)


@router.delete("/users/{user_id}")
async def delete_user(
    user_id: DbInt, services: ServicesDep, admin: AdminDep
) -> Response:
    if user_id == admin.user_id:
        raise Forbidden("you cannot delete yourself")
    await services.users.get_user(user_id)
    await services.users.delete_user(user_id, admin.username)
    return Response(status_code=200)


@router.put("/users/{user_id}/password")
async def change_password(
    user_id: DbInt, body: PasswordReq, services: ServicesDep, user: UserDep
) -> Response:
    _require_self_or_admin(user, user_id)
    await services.users.get_user(user_id)
    # An admin resets another user's password without knowing it.
    old = None if (user.sysadmin and user.user_id != user_id) else body.old_password
    if old is None and user.user_id == user_id:
        raise BadRequest("old_password is required")
    await services.users.change_password(user_id, body.new_password, old, user.username)
    return Response(status_code=200)


@router.put("/users/{user_id}/sysadmin")
async def set_sysadmin(
    user_id: DbInt, body: SysAdminFlag, services: ServicesDep, admin: AdminDep
) -> Response:
    if user_id == admin.user_id:
        raise Forbidden("you cannot change your own admin flag")
    await services.users.get_user(user_id)
    await services.users.set_sysadmin_by_id(user_id, body.sysadmin_flag, admin.username)
    return Response(status_code=200)


def _require_self_or_admin(user: Principal, user_id: int) -> None:
    if not user.sysadmin and user.user_id != user_id:
        raise Forbidden("you may only act on your own account")
