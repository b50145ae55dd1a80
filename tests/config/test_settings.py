from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import Settings, load_settings


def test_defaults_run_on_one_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PASSAGE_MONGO_URI", "PASSAGE_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    s = Settings()
    assert s.mqtt.host == "127.0.0.1" and s.broker.embedded and s.mongo_uri is None


def test_toml_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "passage.toml"
    cfg.write_text('log_level = "DEBUG"\n[mqtt]\nport = 2883\nhost = "broker.local"\n[gate]\ngate_id = "east"\n')
    monkeypatch.setenv("PASSAGE_MQTT__PORT", "3883")
    monkeypatch.setenv("PASSAGE_MONGO_URI", "mongodb://db:27017")
    s = load_settings(cfg)
    assert s.mqtt.port == 3883  # environment beats the file
    assert s.mqtt.host == "broker.local" and s.gate.gate_id == "east" and s.log_level == "DEBUG"
    assert s.mongo_uri is not None and "db:27017" not in repr(s)  # secrets are masked


def test_unknown_keys_and_bad_types_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[mqtt]\nprot = 1\n")
    monkeypatch.setenv("PASSAGE_CONFIG", str(cfg))
    with pytest.raises(ValidationError):
        Settings()
    cfg.write_text("[mqtt]\nport = \"many\"\n")
    with pytest.raises(ValidationError):
        Settings()


def test_missing_config_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASSAGE_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError):
        Settings()
