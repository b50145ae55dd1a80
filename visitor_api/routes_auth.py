"""POST /auth/token: a resident logs in with a password and gets a JWT."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from pymongo.errors import PyMongoError
from starlette.concurrency import run_in_threadpool

from accounts.store import Account, Role
from schemas.base import is_identifier
from visitor_api.context import BridgeContext, bridge_context, client_address
from visitor_api.errors import AccountsUnavailable, RateLimited, Unauthorized, UnsupportedMediaType
from visitor_api.models import TokenRequest, TokenResponse
from visitor_api.responses import error_responses

log = logging.getLogger(__name__)

router = APIRouter(tags=["auth"])

_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"
_LOGIN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "minLength": 1, "maxLength": 128},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024, "format": "password"},
        "grant_type": {"type": "string", "enum": ["password"]},
        "scope": {"type": "string", "maxLength": 200},
    },
    "required": ["username", "password"],
    "additionalProperties": False,
}


@router.post(
    "/auth/token", response_model=TokenResponse, summary="Log in (OAuth2 password grant, or the same fields as JSON)",
    responses=error_responses(400, 401, 413, 415, 422, 429, 503),
    openapi_extra={"requestBody": {"required": True, "content": {_FORM: {"schema": _LOGIN_SCHEMA},
                                                                 _JSON: {"schema": _LOGIN_SCHEMA}}}},
)
async def issue_token(request: Request, ctx: Annotated[BridgeContext, Depends(bridge_context)]) -> TokenResponse:
    """A JWT for a resident account. Unknown user and wrong password get the same 401; attempts are
    limited per client address, failures per username."""
    login = await _read_login(request)
    address = client_address(request)
    wait = ctx.login_per_ip.acquire(address)
    if wait > 0:
        raise RateLimited(wait, "too many log-in attempts from this address")
    # Taken before checking and given back on success, so parallel guesses are limited as well.
    wait = ctx.login_failures.acquire(login.username)
    if wait > 0:
        raise RateLimited(wait, "too many failed log-ins for this account")
    account = await _authenticate(ctx, login)
    if account is None or account.role is not Role.RESIDENT or account.user_id is None:
        log.info("failed log-in for %s from %s", login.username if is_identifier(login.username) else "<invalid>",
                 address)
        raise Unauthorized("wrong username or password")
    ctx.login_failures.refund(login.username)
    log.info("resident account %s logged in from %s", account.id, address)
    return TokenResponse(access_token=ctx.tokens.issue(account.id, account.user_id), expires_in=ctx.tokens.ttl_s)


async def _read_login(request: Request) -> TokenRequest:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if media == _FORM:
            form = await request.form(max_files=0, max_fields=10)
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            if len(fields) != len(form.multi_items()):
                raise RequestValidationError([{"type": "value_error", "loc": ("body",),
                                               "msg": "repeated or non-text form fields"}])
            return TokenRequest.model_validate(fields)
        if media == _JSON:
            return TokenRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    raise UnsupportedMediaType(f"send the log-in as {_FORM} or {_JSON}")


async def _authenticate(ctx: BridgeContext, login: TokenRequest) -> Account | None:
    try:
        # argon2id takes tens of milliseconds of CPU: off the event loop.
        return await run_in_threadpool(ctx.accounts.authenticate, login.username, login.password)
    except PyMongoError:
        raise AccountsUnavailable() from None
