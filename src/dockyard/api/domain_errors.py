"""Services' exceptions in Harbor's terms: the one table from a domain
exception to the `ApiError` (and so the status and code) it answers with.

Routes call services and let their exceptions rise; `create_api` registers
`handle_domain_error` for every class below, and the most specific entry in an
exception's class hierarchy wins (`RoleExists` before its base `GrantError`).
The message is the exception's own.

A route catches a domain exception itself only where its answer depends on
the call: a proxy-cache project naming an unknown registry is a bad request,
not a missing resource; a robot whose own account is gone is forbidden.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from dockyard.allowlists import AllowlistInvalid
from dockyard.api.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    TooManyRequests,
    handle_api_error,
)
from dockyard.auth.passwords import PasswordTooWeak
from dockyard.auth.users import (
    LoginThrottled,
    UserError,
    UserExists,
    UserNotFound,
    WrongPassword,
)
from dockyard.configurations import ConfigurationError
from dockyard.grants import (
    BuiltinRole,
    GrantError,
    GrantNotFound,
    RoleExists,
    RoleInUse,
    RoleNotFound,
)
from dockyard.groups import GroupError, GroupExists, GroupNotFound
from dockyard.labels import (
    ArtifactGone,
    LabelAttached,
    LabelExists,
    LabelInvalid,
    LabelNotAttached,
    LabelNotFound,
)
from dockyard.projects import (
    MemberExists,
    MetadataExists,
    MetadataInvalid,
    MetadataNotFound,
    NotEmpty,
    ProjectError,
    ProjectExists,
    ProjectNotFound,
    UnknownRole,
)
from dockyard.quotas import QuotaInvalid, QuotaNotFound
from dockyard.registry.additions import AdditionUnavailable
from dockyard.registry.artifacts import (
    AccessoryNotCopyable,
    AdditionNotApplicable,
    TagExists,
)
from dockyard.registry.errors import (
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    StillReferenced,
)
from dockyard.replication.executions import ExecutionNotFound
from dockyard.replication.policies import PolicyExists, PolicyInvalid, PolicyNotFound
from dockyard.replication.registries import (
    RegistryExists,
    RegistryInUse,
    RegistryInvalid,
    RegistryNotFound,
)
from dockyard.robots import RobotExists, RobotInvalid, RobotNotFound, UnknownProject

DOMAIN_ERRORS: dict[type[Exception], type[ApiError]] = {
    # users and sign-in
    UserError: BadRequest,
    UserExists: Conflict,
    UserNotFound: NotFound,
    WrongPassword: Forbidden,
    LoginThrottled: TooManyRequests,
    PasswordTooWeak: BadRequest,
    # projects, members, metadata
    ProjectError: BadRequest,
    ProjectExists: Conflict,
    ProjectNotFound: NotFound,
    NotEmpty: PreconditionFailed,
    MemberExists: Conflict,
    UnknownRole: BadRequest,
    MetadataInvalid: BadRequest,
    MetadataExists: Conflict,
    MetadataNotFound: NotFound,
    # roles and grants
    GrantError: BadRequest,
    GrantNotFound: NotFound,
    RoleNotFound: NotFound,
    RoleExists: Conflict,
    RoleInUse: PreconditionFailed,
    BuiltinRole: Forbidden,
    # user groups
    GroupError: BadRequest,
    GroupExists: Conflict,
    GroupNotFound: NotFound,
    # robot accounts
    RobotInvalid: BadRequest,
    RobotExists: Conflict,
    RobotNotFound: NotFound,
    UnknownProject: NotFound,
    # labels
    LabelInvalid: BadRequest,
    LabelNotFound: NotFound,
    LabelNotAttached: NotFound,
    ArtifactGone: NotFound,
    LabelExists: Conflict,
    LabelAttached: Conflict,
    # quotas, allowlists, configurations
    QuotaInvalid: BadRequest,
    QuotaNotFound: NotFound,
    AllowlistInvalid: BadRequest,
    ConfigurationError: BadRequest,
    # repositories and artifacts (the data plane's errors)
    RegistryError: BadRequest,
    NameUnknown: NotFound,
    ManifestUnknown: NotFound,
    StillReferenced: PreconditionFailed,
    TagExists: Conflict,
    AccessoryNotCopyable: Forbidden,
    AdditionNotApplicable: BadRequest,
    AdditionUnavailable: BadRequest,
    # registry endpoints and replication
    RegistryInvalid: BadRequest,
    RegistryNotFound: NotFound,
    RegistryExists: Conflict,
    RegistryInUse: PreconditionFailed,
    PolicyInvalid: BadRequest,
    PolicyNotFound: NotFound,
    PolicyExists: Conflict,
    ExecutionNotFound: NotFound,
}


def api_error_for(exc: Exception) -> ApiError:
    """The Harbor error `exc` answers with: the entry for its most specific
    class in `DOMAIN_ERRORS`. `LookupError` if none of its classes is there."""
    for cls in type(exc).__mro__:
        if cls in DOMAIN_ERRORS:
            return DOMAIN_ERRORS[cls](str(exc))
    raise LookupError(f"{type(exc).__name__} has no Harbor error")


async def handle_domain_error(request: Request, exc: Exception) -> JSONResponse:
    return await handle_api_error(request, api_error_for(exc))


Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def domain_error_handlers() -> dict[type[Exception], Handler]:
    """`handle_domain_error` for every class of the table, for FastAPI's
    `exception_handlers`."""
    return {cls: handle_domain_error for cls in DOMAIN_ERRORS}
