"""The console over real HTTP (uvicorn on a free port): log-in, sessions, CSRF, limits."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pymongo

from accounts.store import AccountStore, Role
from config.ports import free_port
from console.server import start_console
from console.sessions import SESSION_COOKIE, SessionSigner
from store.repository import Store
from tests import face_photos as photos
from tests.conftest import BrokerInfo
from tests.console.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    SECRET,
    RunningConsole,
    browser_like,
    console_settings,
    csrf_of,
    log_in,
    running_console,
)


async def test_every_page_but_login_requires_a_session(console: RunningConsole) -> None:
    async with browser_like(console.url) as http:
        for path in ("/", "/residents", "/residents/new", "/events", "/gates"):
            r = await http.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/login?next="), path
        assert (await http.get("/stream")).status_code == 401
        assert (await http.post("/residents", data={"user_id": "U1"})).status_code == 401
        assert (await http.post("/logout")).status_code == 401
        login = await http.get("/login")
        assert login.status_code == 200 and 'name="password"' in login.text


async def test_wrong_password_refused_right_one_gives_a_strict_httponly_session(console: RunningConsole) -> None:
    async with browser_like(console.url) as http:
        wrong = await log_in(http, password="not the password")
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        assert SESSION_COOKIE not in http.cookies
        unknown = await log_in(http, name="nobody", password=ADMIN_PASSWORD)
        assert unknown.status_code == 401 and "Wrong name or password" in unknown.text

        ok = await log_in(http)
        assert ok.status_code == 303 and ok.headers["location"] == "/residents"
        cookie = ok.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        events = await http.get("/events")
        assert events.status_code == 200 and ADMIN in events.text


async def test_a_resident_account_cannot_log_in_to_the_console(console: RunningConsole) -> None:
    await asyncio.to_thread(console.accounts.create, "tenant1", Role.RESIDENT, password="tenant password 1",
                            user_id="U1")
    async with browser_like(console.url) as http:
        r = await log_in(http, name="tenant1", password="tenant password 1")
        assert r.status_code == 401 and SESSION_COOKIE not in http.cookies


async def test_failed_logins_are_rate_limited(tmp_path: Path, amqtt_broker: BrokerInfo,
                                              embedded_store: Store) -> None:
    settings = console_settings(tmp_path, amqtt_broker, login_max_failures=3, login_window_s=60)
    async with running_console(settings, embedded_store) as console, browser_like(console.url) as http:
        for _ in range(3):
            assert (await log_in(http, password="guess guess guess")).status_code == 401
        blocked = await log_in(http)  # even the right password, until the window passes
        assert blocked.status_code == 429 and "Too many failed log-ins" in blocked.text
        assert int(blocked.headers["retry-after"]) > 0
        assert SESSION_COOKIE not in http.cookies


async def test_posts_without_the_sessions_csrf_token_are_refused(console: RunningConsole) -> None:
    async with browser_like(console.url) as http:
        # The log-in form itself: no token, or no log-in cookie.
        r = await http.post("/login", data={"username": ADMIN, "password": ADMIN_PASSWORD})
        assert r.status_code == 403 and SESSION_COOKIE not in http.cookies
        assert (await log_in(http)).status_code == 303
        page = await http.get("/residents/new")
        token = csrf_of(page.text)
        fields = {"user_id": "U1", "name": "Kim"}
        missing = await http.post("/residents", data=fields)
        assert missing.status_code == 403 and "did not come from the console" in missing.text
        forged = await http.post("/residents", data={**fields, "csrf_token": token[:-2] + "xx"})
        assert forged.status_code == 403
        cross_site = await http.post("/residents", data={**fields, "csrf_token": token},
                                     headers={"origin": "https://evil.example"})
        assert cross_site.status_code == 403
        logout = await http.post("/logout", data={})
        assert logout.status_code == 403
        assert (await http.get("/events")).status_code == 200  # still logged in


async def test_logout_ends_the_session_even_for_a_copied_cookie(console: RunningConsole) -> None:
    async with browser_like(console.url) as http:
        await log_in(http)
        stolen = http.cookies[SESSION_COOKIE]
        page = await http.get("/events")
        out = await http.post("/logout", data={"csrf_token": csrf_of(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
    async with browser_like(console.url) as other:
        other.cookies.set(SESSION_COOKIE, stolen)
        assert (await other.get("/events")).status_code == 303


async def test_forged_or_deactivated_sessions_are_refused(console: RunningConsole) -> None:
    async with browser_like(console.url) as http:
        await log_in(http)
        cookie = http.cookies[SESSION_COOKIE]
        body, mac = cookie.split(".")
        http.cookies.set(SESSION_COOKIE, body + "." + mac[::-1])
        assert (await http.get("/events")).status_code == 303
        http.cookies.set(SESSION_COOKIE, cookie)
        assert (await http.get("/events")).status_code == 200
        await asyncio.to_thread(console.accounts.deactivate, ADMIN)
        assert (await http.get("/events")).status_code == 303


async def test_oversize_and_wrong_type_uploads_are_refused_cleanly(console: RunningConsole) -> None:
    async with browser_like(console.url) as http:
        await log_in(http)
        token = csrf_of((await http.get("/residents/new")).text)
        fields = {"user_id": "U1", "name": "Kim", "csrf_token": token}
        huge = b"\xff\xd8\xff" + b"\0" * (3 * 1024 * 1024)
        r = await http.post("/residents", data=fields, files={"photo": ("big.jpg", huge, "image/jpeg")})
        assert r.status_code == 413 and "too large" in r.text and "Nothing was saved" in r.text
        # Just over the photo limit but inside the form limit: the form says so.
        over = b"\xff\xd8\xff" + b"\0" * (2 * 1024 * 1024)
        r = await http.post("/residents", data=fields, files={"photo": ("big.jpg", over, "image/jpeg")})
        assert r.status_code == 400 and "larger than 2 MiB" in r.text
        r = await http.post("/residents", data=fields, files={"photo": ("x.gif", b"GIF89a....", "image/gif")})
        assert r.status_code == 400 and "only JPEG or PNG" in r.text
        r = await http.post("/residents", data={**fields, "user_id": "bad id/with slash"},
                            files={"photo": ("a.jpg", photos.YAO.read_bytes(), "image/jpeg")})
        assert r.status_code == 400 and "user_id" in r.text
        # The server is still fine after all that.
        assert (await http.get("/events")).status_code == 200


async def test_pages_carry_security_headers(console: RunningConsole) -> None:
    async with browser_like(console.url) as http:
        r = await http.get("/login")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_residents_page_reports_a_missing_admin_worker(tmp_path: Path, amqtt_broker: BrokerInfo,
                                                            embedded_store: Store) -> None:
    settings = console_settings(tmp_path, amqtt_broker, reply_timeout_s=0.5)
    async with running_console(settings, embedded_store) as console, browser_like(console.url) as http:
        await log_in(http)
        r = await http.get("/residents")
        assert r.status_code == 503 and "did not answer" in r.text


async def test_an_unreachable_account_store_fails_closed_with_503(tmp_path: Path, amqtt_broker: BrokerInfo) -> None:
    dead: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", serverSelectionTimeoutMS=300)
    settings = console_settings(tmp_path, amqtt_broker)
    task = await start_console(settings, AccountStore(dead["passage"]), timeout=15)
    try:
        async with browser_like(f"http://127.0.0.1:{settings.console.port}") as http:
            _, cookie = SessionSigner(SECRET, 60).issue(ADMIN)  # a valid session for an account we cannot check
            http.cookies.set(SESSION_COOKIE, cookie)
            r = await http.get("/events")
            assert r.status_code == 503 and "cannot be reached" in r.text
            http.cookies.clear()
            r = await log_in(http)
            assert r.status_code == 503 and SESSION_COOKIE not in http.cookies
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        dead.close()
