"""The secure Mosquitto config: what it renders, what it refuses, and that Mosquitto loads it."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from broker.mosquitto import (
    MosquittoConfigError,
    TlsListener,
    _mosquitto_exe,
    render_config,
    render_pki_config,
    render_site_config,
)
from config.ports import free_port
from config.settings import BrokerSettings
from tests.security.site_fixture import build_site

TLS = TlsListener(Path("/pki/ca.crt"), Path("/pki/broker.crt"), Path("/pki/broker.key"))


def test_plain_config_is_unchanged_by_default() -> None:
    text = render_config()
    assert "listener 1883 127.0.0.1" in text and "per_listener_settings false" in text
    assert "cafile" not in text and "acl_file" not in text


def test_secure_config_has_an_authenticating_tls_listener_and_a_local_plain_one() -> None:
    text = render_config(tls=TLS, acl_file=Path("/pki/acl"), password_file=Path("/pki/passwd"))
    plain, _, tls = text.partition("# MQTTS")
    assert "per_listener_settings true" in plain
    assert "listener 1883 127.0.0.1" in plain and "allow_anonymous false" in plain
    assert "password_file /pki/passwd" in plain and "acl_file /pki/acl" in plain
    for line in ("listener 8883", "cafile /pki/ca.crt", "certfile /pki/broker.crt", "keyfile /pki/broker.key",
                 "tls_version tlsv1.2", "require_certificate true", "use_identity_as_username true",
                 "allow_anonymous false", "acl_file /pki/acl"):
        assert line in tls.splitlines(), line


def test_password_tls_listener_and_trusted_loopback() -> None:
    text = render_config(tls=TlsListener(TLS.ca_file, TLS.cert_file, TLS.key_file, require_certificate=False),
                         acl_file=Path("/a"), password_file=Path("/p"), allow_anonymous=True)
    plain, _, tls = text.partition("# MQTTS")
    assert "allow_anonymous true" in plain and "acl_file" not in plain  # trusted local clients
    assert "require_certificate false" in tls and "password_file /p" in tls and "acl_file /a" in tls
    with pytest.raises(MosquittoConfigError, match="password_file"):
        render_config(tls=TlsListener(TLS.ca_file, TLS.cert_file, TLS.key_file, require_certificate=False))


def test_plain_mqtt_off_loopback_must_be_asked_for() -> None:
    with pytest.raises(MosquittoConfigError, match="not loopback"):
        render_config(bind="0.0.0.0")
    assert "listener 1883 10.0.0.2" in render_config(bind="10.0.0.2", allow_remote_plain=True)
    assert "listener 1883" not in render_config(tls=TLS, plain=False, bind="0.0.0.0")


def test_site_config_follows_broker_settings() -> None:
    settings = BrokerSettings(tls_port=8884, ca_file=Path("/c"), cert_file=Path("/s"), key_file=Path("/k"),
                              acl_file=Path("/a"), allow_anonymous=False, password_file=Path("/p"))
    text = render_site_config(settings)
    assert "listener 8884\n" in text and "cafile /c" in text and "acl_file /a" in text
    assert render_site_config(BrokerSettings()).count("listener ") == 1


def test_broker_settings_refuse_what_would_open_the_broker() -> None:
    with pytest.raises(ValueError, match="not loopback"):
        BrokerSettings(bind_host="0.0.0.0")
    with pytest.raises(ValueError, match="ca_file"):
        BrokerSettings(tls_port=8883)
    with pytest.raises(ValueError, match="password_file"):
        BrokerSettings(tls_port=8883, ca_file=Path("/c"), cert_file=Path("/s"), key_file=Path("/k"),
                       require_certificate=False)
    assert BrokerSettings().tls_port is None and BrokerSettings().allow_anonymous  # today's default


def test_mosquitto_loads_the_pki_config(tmp_path: Path) -> None:
    site = build_site(tmp_path / "pki")
    port, tls_port = free_port(), free_port()
    text = render_pki_config(site.paths.root, port=port, tls_port=tls_port, persistence_dir=None)
    assert f"crlfile {site.paths.crl.resolve()}" in text  # Mosquitto must accept the CRL it names
    if os.geteuid() == 0:
        text = "user root\n" + text  # the test's files are root-only; a site chowns them to mosquitto
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text.replace(f"listener {tls_port}\n", f"listener {tls_port} 127.0.0.1\n"))
    proc = subprocess.Popen([_mosquitto_exe(), "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        up: set[int] = set()
        while time.monotonic() < deadline and up != {port, tls_port}:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            for p in (port, tls_port):
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
                    up.add(p)
                except OSError:
                    pass
            time.sleep(0.05)
        assert up == {port, tls_port}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
