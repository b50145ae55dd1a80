"""The bridge's FastAPI application: middleware, typed error answers, routes and the MQTT lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from accounts.store import AccountStore
from config.settings import Settings
from visitor_api.context import BridgeContext
from visitor_api.errors import ApiError, ApiErrorCode
from visitor_api.middleware import SECURITY_HEADERS, BodyLimit, SecurityHeaders
from visitor_api.models import ErrorBody, FieldError, ValidationErrorBody
from visitor_api.relay import VisitorRelay
from visitor_api.routes_auth import router as auth_router
from visitor_api.routes_visitors import router as visitors_router

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ApiErrorCode.BAD_REQUEST,
    401: ApiErrorCode.UNAUTHORIZED,
    403: ApiErrorCode.FORBIDDEN,
    404: ApiErrorCode.NOT_FOUND,
    405: ApiErrorCode.METHOD_NOT_ALLOWED,
    413: ApiErrorCode.BODY_TOO_LARGE,
    415: ApiErrorCode.UNSUPPORTED_MEDIA_TYPE,
}


def create_app(settings: Settings, accounts: AccountStore, *, relay: VisitorRelay | None = None) -> FastAPI:
    """The bridge for `settings`; its lifespan connects to the broker and disconnects again."""
    relay = relay or VisitorRelay(settings.mqtt, settings.bridge)
    ctx = BridgeContext.build(settings, accounts, relay)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        relay.start()
        try:
            yield
        finally:
            await relay.stop()

    app = FastAPI(
        title="Passage visitor API",
        version="1.0.0",
        description="Residents register visitors and manage their unit's visitor passes. Log in with "
                    "POST /auth/token and send the token as a bearer token; integrations send X-API-Key.",
        lifespan=lifespan,
        # The API is for an app, not a browser: no Swagger/ReDoc pages (and their scripts under the CSP).
        docs_url=None,
        redoc_url=None,
    )
    app.state.bridge = ctx
    app.include_router(auth_router)
    app.include_router(visitors_router)
    _install_error_handlers(app)
    if settings.bridge.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.bridge.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"], max_age=600)
    app.add_middleware(BodyLimit, max_bytes=settings.bridge.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Locations and messages only: the rejected values may be passwords or phone numbers.
        errors = [FieldError(loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
                             message=str(e.get("msg", "invalid"))) for e in exc.errors()]
        body = ValidationErrorBody(code=ApiErrorCode.VALIDATION_FAILED, message="the request is not valid",
                                   errors=errors[:20])
        return JSONResponse(body.model_dump(mode="json"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, ApiErrorCode.BAD_REQUEST)
        message = exc.detail if isinstance(exc.detail, str) else code.value
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return _error(exc.status_code, code, message, headers)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("visitor api: unhandled error on %s %s", request.method, request.url.path)
        # This answer bypasses the middleware stack, so it carries the security headers itself.
        return _error(500, ApiErrorCode.INTERNAL_ERROR, "internal error", dict(SECURITY_HEADERS))


def _allowed_methods(request: Request) -> str:
    """Every method of the path: Starlette's own Allow names only the first route matching it."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def _error(status: int, code: ApiErrorCode, message: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(ErrorBody(code=code, message=message).model_dump(mode="json"), status_code=status,
                        headers=headers or None)
