"""Who is calling: a resident's bearer JWT or an integration's API key, then the per-account rate limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, TypeVar

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from pymongo.errors import PyMongoError
from starlette.concurrency import run_in_threadpool

from accounts.store import Account, Role
from visitor_api.context import BridgeContext, bridge_context
from visitor_api.errors import AccountsUnavailable, RateLimited, Unauthorized

T = TypeVar("T")

MAX_API_KEY_CHARS = 256

resident_token = OAuth2PasswordBearer(
    tokenUrl="auth/token", scheme_name="ResidentToken", auto_error=False,
    description="A resident's JWT from POST /auth/token, sent as `Authorization: Bearer <token>`.")
integration_key = APIKeyHeader(
    name="X-API-Key", scheme_name="IntegrationKey", auto_error=False,
    description="An integration's API key (`passage bridge add-api-key`); it acts for one resident.")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller and the resident they act for."""

    account_id: str
    user_id: str
    via: Literal["token", "api_key"]


async def authenticated(
    token: Annotated[str | None, Depends(resident_token)],
    api_key: Annotated[str | None, Security(integration_key)],
    ctx: Annotated[BridgeContext, Depends(bridge_context)],
) -> Principal:
    """The caller, checked against the account store on every request (a deactivated account stops
    working at once, not when its token expires); raises Unauthorized."""
    if token and api_key:
        raise Unauthorized()
    if token:
        claims = ctx.tokens.verify(token)
        account = await _lookup(ctx.accounts.get, claims.account_id)
        if (account is None or not account.active or account.role is not Role.RESIDENT
                or account.user_id != claims.user_id):
            raise Unauthorized()
        return Principal(account.id, claims.user_id, "token")
    if api_key:
        if len(api_key) > MAX_API_KEY_CHARS:
            raise Unauthorized()
        account = await _lookup(ctx.accounts.by_api_key, api_key)
        if account is None or not account.active or account.role is not Role.INTEGRATION or account.user_id is None:
            raise Unauthorized()
        return Principal(account.id, account.user_id, "api_key")
    raise Unauthorized()


async def acting(
    principal: Annotated[Principal, Depends(authenticated)],
    ctx: Annotated[BridgeContext, Depends(bridge_context)],
) -> Principal:
    """The authenticated caller within their rate limit; raises RateLimited."""
    wait = ctx.per_account.acquire(principal.account_id)
    if wait > 0:
        raise RateLimited(wait)
    return principal


async def _lookup(find: Callable[[str], Account | None], value: str) -> Account | None:
    try:
        return await run_in_threadpool(find, value)
    except PyMongoError:
        raise AccountsUnavailable() from None
