"""Local stand-ins for the services the notifier talks to: a recording HTTP(S) server, a local CA,
and an HTTPS proxy that hands chosen hosts (fcm.googleapis.com, oauth2.googleapis.com) to a stand-in.

firebase-admin has no endpoint override for FCM (its URL is a class constant), so the FCM tests do
what a site behind an egress proxy does: HTTPS_PROXY points at a CONNECT proxy, REQUESTS_CA_BUNDLE
at the CA that signed the certificate it presents. The library's own request goes out unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Recorded:
    """One request as the stand-in received it."""

    method: str
    host: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})

    @classmethod
    def of_json(cls, status: int, doc: object) -> Reply:
        return cls(status, json.dumps(doc).encode())


Responder = Callable[[Recorded], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: HttpStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real clients expect
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Recorded(self.command, self.headers.get("Host", ""), self.path,
                       {k.lower(): v for k, v in self.headers.items()}, body)
        reply = self.server.standin.record(req)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_POST = do_GET = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpStandIn:
    """A threaded HTTP server on a loopback port that records every request and answers with
    `responder` (default: 200 `{}`). Optionally TLS (`tls`: a server-side SSL context)."""

    def __init__(self, responder: Responder | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.responder = responder or (lambda _req: Reply())
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.standin = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def record(self, req: Recorded) -> Reply:
        with self._lock:
            self.requests.append(req)
        return self.responder(req)

    def handle_connection(self, conn: socket.socket, address: tuple[str, int]) -> None:
        """Serve HTTP on an already accepted (e.g. TLS-unwrapped) connection, in this thread."""
        _Handler(conn, address, self._server)

    def __enter__(self) -> HttpStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass
class LocalCa:
    """A throw-away certificate authority and one server certificate it signed."""

    ca_file: Path
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext


def make_ca(directory: Path, hosts: list[str]) -> LocalCa:
    """A CA (written to directory/ca.pem) and a server certificate for `hosts` and 127.0.0.1."""
    import ipaddress

    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Passage test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(ca_file))
    return LocalCa(ca_file, server, client)


class InterceptingProxy:
    """An HTTPS proxy (CONNECT) on a loopback port. Tunnels to `hosts` are terminated here with the
    test CA's certificate and served by `standin`; any other destination is refused with 403 and
    remembered in `refused`, so a test can prove nothing left the machine."""

    def __init__(self, standin: HttpStandIn, ca: LocalCa, hosts: set[str]) -> None:
        self._standin = standin
        self._tls = ca.server_context
        self._hosts = hosts
        self.refused: list[str] = []
        self.tunnels: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> InterceptingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(5)

    def _accept_loop(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, address = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(conn, address), daemon=True).start()

    def _tunnel(self, conn: socket.socket, address: tuple[str, int]) -> None:
        conn.settimeout(10)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            host, _, port = target.rpartition(":")
            if method != "CONNECT" or host not in self._hosts or port != "443":
                self.refused.append(target)
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            self.tunnels.append(host)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            tls_conn = self._tls.wrap_socket(conn, server_side=True)
            self._standin.handle_connection(tls_conn, address)
        except (OSError, ValueError):
            pass
        finally:
            conn.close()


def iter_requests(standin: HttpStandIn, path_prefix: str) -> Iterator[Recorded]:
    return (r for r in list(standin.requests) if r.path.startswith(path_prefix))
