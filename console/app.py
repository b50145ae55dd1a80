"""The console's HTTP side: log-in, residents, enrollment, live events and gate status.

Server-rendered pages and plain HTML forms. Everything that changes residents or credentials
goes to the admin worker over MQTT as the logged-in admin; the console itself reads and writes
only admin accounts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from pymongo.errors import PyMongoError
from starlette.datastructures import FormData, UploadFile

from accounts.attempts import AttemptLimiter, TooManyAttempts
from accounts.store import AccountStore
from admin_worker.client import AdminClientError, AdminTimeout
from config.key_files import secret_text
from config.settings import Settings
from console.admins import AdminPool
from console.auth import AdminDirectory
from console.enroll import EnrollOutcome, enroll_resident
from console.feed import ConsoleFeed, StreamMessage, new_feed
from console.middleware import BodyLimit, SecurityHeaders
from console.sessions import LOGIN_COOKIE, SESSION_COOKIE, InvalidSession, Session, SessionSigner, new_login_nonce
from http_guard.middleware import BodyTooLarge
from schemas.access import MAX_FACE_JPEG_BYTES
from schemas.admin import AddCard, AddFace, AdminAction, AdminReply, CreateUser, DeleteUser, ListUsers
from schemas.base import is_identifier

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PAGE_SIZE = 50
# A photo at the schema's limit plus the form's other fields and multipart framing.
MAX_BODY_BYTES = MAX_FACE_JPEG_BYTES + 64 * 1024
SSE_KEEPALIVE_S = 15.0

templates = Jinja2Templates(directory=HERE / "templates")


def _clock(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["clock"] = _clock


class NotLoggedIn(Exception):
    """No valid session (or the account is no longer an active admin)."""


class CsrfRefused(Exception):
    """A POST without the session's CSRF token, or from another origin."""


@dataclass
class Console:
    """Everything a request handler needs, built once per app."""

    settings: Settings
    signer: SessionSigner
    limiter: AttemptLimiter
    directory: AdminDirectory
    feed: ConsoleFeed
    admins: AdminPool

    async def send(self, session: Session, action: AdminAction) -> AdminReply:
        return await self.admins.send(session.admin_id, action)


def session_secret(settings: Settings) -> str:
    """The configured session secret, else one generated once into data_dir/keys."""
    if settings.console.session_secret is not None:
        return settings.console.session_secret.get_secret_value()
    return secret_text(settings.data_dir / "keys" / "console_session.key")


def build_app(settings: Settings, accounts: AccountStore, feed: ConsoleFeed | None = None) -> FastAPI:
    """The console app; its lifespan runs the MQTT feed and closes the admin clients."""
    cs = settings.console
    console = Console(
        settings=settings,
        signer=SessionSigner(session_secret(settings), cs.session_ttl_s),
        limiter=AttemptLimiter(cs.login_max_failures, cs.login_window_s),
        directory=AdminDirectory(accounts),
        feed=feed or new_feed(settings.mqtt, cs.recent_events),
        admins=AdminPool(settings.mqtt, cs.reply_timeout_s),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(console.feed.client.run(), name="console-feed")
        try:
            yield
        finally:
            console.feed.close()
            console.feed.client.stop()
            await console.admins.close()
            try:
                await asyncio.wait_for(task, 10)
            except TimeoutError:
                log.warning("console feed did not stop in time")

    app = FastAPI(title="Passage console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(_router())
    app.add_exception_handler(NotLoggedIn, _not_logged_in)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    app.add_exception_handler(PyMongoError, _store_unavailable)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, render=_too_large_page)
    app.add_middleware(SecurityHeaders)  # outermost: the 413 page gets the headers too
    return app


def _console(request: Request) -> Console:
    console = request.app.state.console
    assert isinstance(console, Console)
    return console


async def require_session(request: Request) -> Session:
    """The logged-in admin's session; raises NotLoggedIn."""
    console = _console(request)
    try:
        session = console.signer.verify(request.cookies.get(SESSION_COOKIE))
    except InvalidSession:
        raise NotLoggedIn() from None
    if not await console.directory.is_active_admin(session.admin_id):
        raise NotLoggedIn()
    return session


SessionDep = Annotated[Session, Depends(require_session)]


def _check_post(request: Request, session_or_nonce: str, token: object) -> None:
    """CSRF: the form's token must be the one bound to this session, and the origin ours."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise CsrfRefused()
    elif origin == "null":
        raise CsrfRefused()
    if not isinstance(token, str) or not _console(request).signer.check_csrf(session_or_nonce, token):
        raise CsrfRefused()


def _page(request: Request, name: str, context: dict[str, Any], session: Session | None = None,
          status_code: int = 200) -> HTMLResponse:
    ctx = {"admin_id": None, "csrf": "", **context}
    if session is not None:
        ctx["admin_id"] = session.admin_id
        ctx["csrf"] = _console(request).signer.csrf_token(session.sid)
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


async def _not_logged_in(request: Request, exc: Exception) -> Response:
    if request.method == "GET" and request.url.path != "/stream":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return PlainTextResponse("log in first", status_code=401)


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    log.warning("console: POST %s refused: missing or wrong CSRF token / origin", request.url.path)
    return _page(request, "message.html", {
        "title": "Form refused",
        "message": "This form did not come from the console, or it has expired. Reload the page and try again.",
    }, status_code=403)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    # Accounts live in the store: without it nobody can be logged in or checked. Fail closed.
    log.error("console: account store unavailable: %s", type(exc).__name__)
    return _page(request, "message.html", {
        "title": "Temporarily unavailable",
        "message": "The account store cannot be reached, so nobody can be checked in. Try again shortly.",
    }, status_code=503)


async def _body_too_large(request: Request, exc: Exception) -> Response:
    return HTMLResponse(_too_large_page(MAX_BODY_BYTES), status_code=413, headers={"connection": "close"})


def _too_large_page(limit: int) -> str:
    return templates.get_template("too_large.html").render(
        limit_mib=f"{limit / 1024 / 1024:.1f}", photo_mib=f"{MAX_FACE_JPEG_BYTES / 1024 / 1024:.0f}")


def _safe_next(target: str | None) -> str:
    # Only paths on this site: no scheme, no host, no "//evil" or backslash tricks.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/residents"
    return target


def _router() -> APIRouter:
    router = APIRouter()
    router.add_api_route("/", home, methods=["GET"], include_in_schema=False)
    router.add_api_route("/login", login_form, methods=["GET"])
    router.add_api_route("/login", login, methods=["POST"])
    router.add_api_route("/logout", logout, methods=["POST"])
    router.add_api_route("/residents", residents, methods=["GET"])
    router.add_api_route("/residents/new", new_resident_form, methods=["GET"])
    router.add_api_route("/residents", add_resident, methods=["POST"])
    router.add_api_route("/residents/{user_id}/delete", delete_resident, methods=["POST"])
    router.add_api_route("/events", events_page, methods=["GET"])
    router.add_api_route("/gates", gates_page, methods=["GET"])
    router.add_api_route("/stream", stream, methods=["GET"])
    return router


async def home(session: SessionDep) -> Response:
    return RedirectResponse("/residents", status_code=303)


# -- log-in ----------------------------------------------------------------------------------

def _login_page(request: Request, error: str | None, status_code: int, next_url: str | None) -> HTMLResponse:
    console = _console(request)
    nonce = new_login_nonce()
    response = _page(request, "login.html", {
        "title": "Log in", "error": error, "next": _safe_next(next_url),
        "login_csrf": console.signer.csrf_token(f"login:{nonce}"),
    }, status_code=status_code)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, path="/login", httponly=True, samesite="strict",
                        secure=console.settings.console.cookie_secure)
    return response


async def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, None, 200, next)


async def login(request: Request) -> Response:
    console = _console(request)
    form = await request.form(max_files=0, max_fields=8)
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    next_url = str(form.get("next") or "")
    nonce = request.cookies.get(LOGIN_COOKIE)
    try:
        _check_post(request, f"login:{nonce}", form.get("csrf_token") if nonce else None)
    except CsrfRefused:
        return _login_page(request, "The log-in form expired. Please try again.", 403, next_url)
    client = request.client.host if request.client else "unknown"
    keys = (f"addr:{client}", f"account:{username.lower()[:64]}")
    try:
        console.limiter.check(*keys)
    except TooManyAttempts as exc:
        log.warning("console: log-in throttled for %s", client)
        throttled = _login_page(request, f"Too many failed log-ins. Try again in {exc.retry_after:.0f} s.",
                                429, next_url)
        throttled.headers["retry-after"] = f"{exc.retry_after:.0f}"
        return throttled
    account = await console.directory.authenticate(username, password)
    if account is None:
        console.limiter.failed(*keys)
        log.warning("console: failed log-in from %s", client)
        return _login_page(request, "Wrong name or password.", 401, next_url)
    console.limiter.succeeded(keys[1])
    _, cookie = console.signer.issue(account.id)
    log.info("console: %s logged in from %s", account.id, client)
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=int(console.signer.ttl_s), path="/", httponly=True,
                        samesite="strict", secure=console.settings.console.cookie_secure)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


async def logout(request: Request, session: SessionDep) -> Response:
    form = await request.form(max_files=0, max_fields=4)
    _check_post(request, session.sid, form.get("csrf_token"))
    _console(request).signer.revoke(session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


# -- residents -------------------------------------------------------------------------------

def _admin_error(exc: AdminClientError) -> str:
    if isinstance(exc, AdminTimeout):
        return f"The admin worker did not answer ({exc})."
    return f"The message bus is unreachable: {exc}"


async def residents(request: Request, session: SessionDep, building: str | None = None, unit: str | None = None,
                    text: str | None = None, page: int = 1) -> Response:
    filters = {"building": (building or "").strip() or None, "unit": (unit or "").strip() or None,
               "text": (text or "").strip() or None}
    page = max(page, 1)
    context: dict[str, Any] = {"title": "Residents", "filters": filters, "users": [], "total": 0, "page": page,
                               "pages": 1, "error": None}
    try:
        query = ListUsers(**filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    except ValidationError as exc:
        context["error"] = "Search: " + _validation_text(exc)
        return _page(request, "residents.html", context, session, 400)
    try:
        reply = await _console(request).send(session, query)
    except AdminClientError as exc:
        context["error"] = _admin_error(exc)
        return _page(request, "residents.html", context, session, 503)
    if not reply.ok:
        context["error"] = reply.error or "The admin worker refused the query."
        return _page(request, "residents.html", context, session, 502)
    total = reply.total if reply.total is not None else len(reply.users)
    context.update(users=reply.users, total=total, pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1))
    return _page(request, "residents.html", context, session)


_FIELDS = ("user_id", "name", "building", "unit", "phone", "groups", "card_id")


def _new_form(values: dict[str, str] | None = None) -> dict[str, str]:
    return {f: (values or {}).get(f, "") for f in _FIELDS}


async def new_resident_form(request: Request, session: SessionDep) -> Response:
    return _page(request, "resident_new.html", {"title": "Add resident", "form": _new_form(), "errors": [],
                                                "outcome": None, "photo_mib": _photo_mib()}, session)


def _photo_mib() -> str:
    return f"{MAX_FACE_JPEG_BYTES / 1024 / 1024:.0f}"


class FormInvalid(Exception):
    """The add-resident form cannot be sent as it is; `messages` say why."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def _validation_text(exc: ValidationError) -> str:
    # Field names and messages only: never echo the input (a card id) into logs.
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())


def _is_image(data: bytes) -> bool:
    return data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")


async def _read_photo(form: FormData) -> bytes | None:
    photo = form.get("photo")
    if not isinstance(photo, UploadFile) or not photo.filename:
        return None
    data = await photo.read(MAX_FACE_JPEG_BYTES + 1)
    if not data:
        raise FormInvalid(["Photo: the file is empty."])
    if len(data) > MAX_FACE_JPEG_BYTES:
        raise FormInvalid([f"Photo: larger than {_photo_mib()} MiB; use a smaller photo."])
    if not _is_image(data):
        raise FormInvalid(["Photo: only JPEG or PNG images are accepted."])
    return data


def _actions(values: dict[str, str], photo: bytes | None) -> tuple[CreateUser, AddCard | None, AddFace | None]:
    """The commands of one enrollment, validated by the schema before anything is sent."""
    messages: list[str] = []
    groups = [g for g in values["groups"].replace(",", " ").split() if g]
    create = card = face = None
    try:
        create = CreateUser(user_id=values["user_id"], name=values["name"], building=values["building"] or None,
                            unit=values["unit"] or None, phone=values["phone"] or None, groups=groups)
    except ValidationError as exc:
        messages.append(_validation_text(exc))
    if not values["name"]:
        messages.append("name: a name is required")
    if create is not None:
        try:
            card = AddCard(user_id=create.user_id, acc_id=values["card_id"]) if values["card_id"] else None
        except ValidationError:
            messages.append("card id: 1 to 64 printable characters, no spaces")
        if photo is not None:
            face = AddFace(user_id=create.user_id, photo=photo)
    if messages or create is None:
        raise FormInvalid(messages)
    return create, card, face


async def add_resident(request: Request, session: SessionDep) -> Response:
    console = _console(request)
    form = await request.form(max_files=1, max_fields=16)
    try:
        _check_post(request, session.sid, form.get("csrf_token"))
        values = {f: str(form.get(f) or "").strip() for f in _FIELDS}
        context: dict[str, Any] = {"title": "Add resident", "form": _new_form(values), "errors": [],
                                   "outcome": None, "photo_mib": _photo_mib()}
        try:
            photo = await _read_photo(form)
            create, card, face = _actions(values, photo)
        except FormInvalid as exc:
            context["errors"] = exc.messages
            return _page(request, "resident_new.html", context, session, 400)
    finally:
        await form.close()

    async def send(action: AdminAction) -> AdminReply:
        return await console.send(session, action)

    outcome: EnrollOutcome = await enroll_resident(send, create, card, face)
    context["outcome"] = outcome
    if outcome.ok:
        context["form"] = _new_form()
    return _page(request, "resident_new.html", context, session, 200 if outcome.ok else 409)


async def delete_resident(request: Request, session: SessionDep, user_id: str) -> Response:
    form = await request.form(max_files=0, max_fields=4)
    _check_post(request, session.sid, form.get("csrf_token"))
    if not is_identifier(user_id):
        return _page(request, "message.html", {"title": "Not found", "message": "No such resident."}, session, 404)
    try:
        reply = await _console(request).send(session, DeleteUser(user_id=user_id))
    except AdminClientError as exc:
        return _page(request, "message.html", {"title": "Not deleted", "message": _admin_error(exc)}, session, 503)
    if not reply.ok:
        return _page(request, "message.html", {"title": "Not deleted", "message": reply.error or "refused"},
                     session, 409)
    return _page(request, "message.html", {"title": "Deleted", "message": f"Resident {user_id} was deleted."},
                 session)


# -- live events and gates -------------------------------------------------------------------

async def events_page(request: Request, session: SessionDep) -> Response:
    return _page(request, "events.html", {"title": "Live events", "items": list(_console(request).feed.recent)},
                 session)


async def gates_page(request: Request, session: SessionDep) -> Response:
    gates = sorted(_console(request).feed.gates.values(), key=lambda g: g.gate_id)
    return _page(request, "gates.html", {"title": "Gates", "gates": gates}, session)


async def stream(request: Request, session: SessionDep) -> Response:
    """Server-Sent Events: `feed` (events) and `gate` (status changes) until the session ends."""
    hub = _console(request).feed.hub
    queue = hub.subscribe()
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + max(session.expires - time.time(), 0.0)

    async def body() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            while loop.time() < ends_at:
                try:
                    message: StreamMessage | None = await asyncio.wait_for(
                        queue.get(), min(SSE_KEEPALIVE_S, max(ends_at - loop.time(), 0.01)))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if message is None:
                    return
                yield f"event: {message.event}\ndata: {message.data}\n\n"
        finally:
            hub.unsubscribe(queue)

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"x-accel-buffering": "no", "cache-control": "no-store"})
