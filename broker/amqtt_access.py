"""Authentication and topic ACL for the embedded amqtt broker, from the same files Mosquitto reads.

amqtt calls plugins with the client's session only. Two of its habits matter here (amqtt 0.12.1):
a reconnect with clean_session=0 reuses the old Session object, overwriting its username and
keeping the *old* connection's ssl_object, before authentication has even run. So nothing here
trusts those fields: the TLS peer certificate is read from the live connection (handed over
through a context variable by `PassageBroker.stream_connected`, inherited by the plugin tasks
amqtt spawns for that connection), and the identity that topic checks use is the one this plugin
stored on the session after it authenticated it.

What amqtt does not enforce and this module adds: client certificates (its TLS listeners only
*ask* for one), the will topic (published on a dirty disconnect without any ACL check; here it is
checked at CONNECT and the connection refused if the will is not the client's to publish), and
retained messages sent on subscribe (not checked per message; here a subscription must lie
entirely inside what the client may read), and revoked certificates (the site CRL).

The password file, the ACL and the CRL are re-read when they change (checked at most once a
second), as Mosquitto re-reads them on SIGHUP: `passage certs revoke` takes effect without a
restart, for new connections and for the revoked client's next publish or delivery alike.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from security.acl import AclFile
from security.passwords import PasswordFile
from security.revocation import load_crl

log = logging.getLogger(__name__)

_IDENTITY = "passage.identity"
_RECHECK_S = 1.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Connection:
    """The network connection a CONNECT came in on."""

    tls: bool
    peer_cn: str | None
    peer_serial: int | None = None


@dataclass(frozen=True, slots=True)
class _Grant:
    """Who a session was authenticated as. `trusted`: an anonymous loopback client, every topic."""

    username: str | None
    trusted: bool


_CONNECTION: contextvars.ContextVar[_Connection | None] = contextvars.ContextVar("passage_amqtt_conn", default=None)


def _connection(ssl_object: ssl.SSLObject | None) -> _Connection:
    """The CN and serial of a verified client certificate (amqtt's listener verifies any
    certificate offered)."""
    if ssl_object is None:
        return _Connection(False, None)
    cert = ssl_object.getpeercert()
    if not cert:
        return _Connection(True, None)
    names = [attr[1] for rdn in cert.get("subject", ()) for attr in rdn if attr[0] == "commonName"]
    serial = cert.get("serialNumber")
    return _Connection(True, names[0] if len(names) == 1 else None,
                       int(serial, 16) if isinstance(serial, str) else None)


class _Watched(Generic[T]):
    """A file's parsed contents, re-read when the file changes. A new version that does not parse
    is refused and the previous one kept (logged): a typo must not open the broker."""

    def __init__(self, path: Path, parse: Callable[[Path], T]) -> None:
        self._path = path
        self._parse = parse
        self._stamp = self._stat()
        self._value = parse(path)  # at start, a bad file stops the broker
        self._checked = time.monotonic()

    def _stat(self) -> tuple[int, int]:
        st = self._path.stat()
        return st.st_mtime_ns, st.st_size

    def get(self) -> T:
        now = time.monotonic()
        if now - self._checked >= _RECHECK_S:
            self._checked = now
            try:
                stamp = self._stat()
                if stamp != self._stamp:
                    self._value = self._parse(self._path)
                    self._stamp = stamp
                    log.info("reloaded %s", self._path)
            except (OSError, ValueError) as exc:
                log.error("keeping the previous %s: the new one is unusable: %s", self._path.name, exc)
        return self._value


class PassageBroker(Broker):  # type: ignore[misc]
    """amqtt's broker, telling the access plugin which connection each CONNECT arrived on."""

    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        token = _CONNECTION.set(_connection(writer.get_extra_info("ssl_object")))
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            _CONNECTION.reset(token)


class PassageAccessPlugin(BaseAuthPlugin, BaseTopicPlugin):  # type: ignore[misc]
    """Authenticates clients and applies the site ACL (security/acl.py), like the Mosquitto config.

    TLS listener: a verified client certificate whose CN is the username (`require_certificate`),
    else a name and password from `password_file`. Plain listener: anonymous clients are trusted
    with every topic if `plain_allow_anonymous` (loopback only, as today), else the password file.
    Everyone who is not trusted is held to `acl_file` (no file: every topic).
    """

    @dataclass
    class Config:
        plain_allow_anonymous: bool = True
        require_certificate: bool = True
        password_file: str | None = None
        acl_file: str | None = None
        crl_file: str | None = None
        ca_file: str | None = None  # the CRL's signer

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        cfg = self.config
        # A missing or malformed file stops the broker from starting.
        self._password_file = (_Watched(Path(cfg.password_file), lambda p: PasswordFile.parse(p.read_text()))
                               if cfg.password_file else None)
        self._acl_file = _Watched(Path(cfg.acl_file), lambda p: AclFile.parse(p.read_text())) if cfg.acl_file else None
        self._crl_file: _Watched[dict[int, datetime]] | None = None
        if cfg.crl_file:
            if not cfg.ca_file:
                raise ValueError("crl_file needs ca_file (the CA that signs it)")
            ca_file = Path(cfg.ca_file)
            self._crl_file = _Watched(Path(cfg.crl_file), lambda p: load_crl(p, ca_file))

    @property
    def _passwords(self) -> PasswordFile | None:
        return self._password_file.get() if self._password_file is not None else None

    @property
    def _acl(self) -> AclFile | None:
        return self._acl_file.get() if self._acl_file is not None else None

    async def authenticate(self, *, session: Any) -> bool:
        conn = _CONNECTION.get()
        if conn is not None and self._revoked(conn):
            log.warning("refused connection of %s: its certificate is revoked", conn.peer_cn)
            return False
        grant = self._grant(conn, session) if conn is not None else None
        if grant is None:
            log.info("refused connection (client id %.64r): no valid credentials", session.client_id)
            return False
        if (session.will_flag and not grant.trusted and self._acl is not None
                and not self._acl.may_publish(grant.username, session.client_id or "", session.will_topic or "")):
            log.info("refused connection of %s: its last will is not its to publish", grant.username)
            return False
        session.attributes[_IDENTITY] = grant
        if grant.username is not None:
            session.username = grant.username
        return True

    def _revoked(self, conn: _Connection) -> bool:
        return (self._crl_file is not None and conn.peer_serial is not None
                and conn.peer_serial in self._crl_file.get())

    def _grant(self, conn: _Connection, session: Any) -> _Grant | None:
        cfg = self.config
        if conn.tls and cfg.require_certificate:
            # Like Mosquitto's use_identity_as_username: a username in CONNECT is ignored.
            return _Grant(conn.peer_cn, trusted=False) if conn.peer_cn else None
        if not conn.tls and cfg.plain_allow_anonymous:
            return _Grant(None, trusted=True)
        username, password = session.username, session.password
        if self._passwords is None or not username or password is None:
            return None
        secret = password.decode() if isinstance(password, bytes | bytearray) else str(password)
        return _Grant(username, trusted=False) if self._passwords.verify(username, secret) else None

    async def topic_filtering(self, *, session: Any = None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        grant = session.attributes.get(_IDENTITY) if session is not None else None
        if not isinstance(grant, _Grant) or topic is None:
            return False
        acl = self._acl
        if grant.trusted or acl is None:
            return True
        client_id = session.client_id or ""
        if action == Action.PUBLISH:
            allowed = acl.may_publish(grant.username, client_id, topic)
        elif action == Action.SUBSCRIBE:
            allowed = acl.may_subscribe(grant.username, client_id, topic)
        elif action == Action.RECEIVE:
            allowed = acl.may_receive(grant.username, client_id, topic)
        else:
            allowed = False
        if not allowed and action != Action.RECEIVE:
            log.info("denied %s %s to %s", action, topic[:120], grant.username)
        return allowed
