"""Settings: one frozen object, typed conversion from strings, one clear message on error."""
from __future__ import annotations

import dataclasses
import os

import pytest

from recstream.settings import Settings, SettingsError


def test_defaults_are_valid_and_match_the_spec():
    s = Settings()
    s.validate()
    assert (s.web_port, s.topic, s.top_k, s.rating_min, s.rating_max) == (8082, "movielog", 20, 1,
                                                                          5)
    assert s.exclude_watched is True
    assert s.broker_url == "tansu://127.0.0.1:9092"  # the embedded broker's transport


def test_from_env_converts_every_kind():
    s = Settings.from_env({
        "RECSTREAM_WEB_PORT": " 9000 ",
        "RECSTREAM_PARTITIONS": "1_6",
        "RECSTREAM_LEARNING_RATE": "0.1",
        "RECSTREAM_EXCLUDE_WATCHED": "off",
        "RECSTREAM_TOPIC": "movielog7",
        "RECSTREAM_RATING_MAX": "10",
        "UNRELATED": "x",
        "RECSTREAM_web_port": "1",  # only upper-case names are read
    })
    assert s.web_port == 9000 and type(s.web_port) is int
    assert s.partitions == 16
    assert s.learning_rate == 0.1 and type(s.learning_rate) is float
    assert s.exclude_watched is False
    assert s.topic == "movielog7"
    assert s.rating_max == 10


def test_from_mapping_accepts_typed_and_string_values(tmp_path):
    s = Settings.from_mapping({"data_dir": tmp_path, "web_port": 8083, "init_scale": "0.5",
                               "exclude_watched": "YES"})
    assert s.data_dir == str(tmp_path) and s.data_path == tmp_path
    assert (s.web_port, s.init_scale, s.exclude_watched) == (8083, 0.5, True)
    for field in dataclasses.fields(Settings):
        assert type(getattr(s, field.name)) is type(field.default), field.name


def test_frozen():
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.web_port = 1  # type: ignore[misc]
    changed = s.replace(top_k=10)
    assert changed.top_k == 10 and s.top_k == 20
    with pytest.raises(SettingsError, match="top_k"):
        s.replace(top_k=0)


@pytest.mark.parametrize("raw, message", [
    ({"web_port": "http"}, "setting web_port = 'http' is not a valid int"),
    ({"exclude_watched": "maybe"}, "is not a valid bool"),
    ({"learning_rate": "fast"}, "is not a valid float"),
    ({"partitions": True}, "is not a valid int"),
    ({"web_port": 70000}, "web_port must be a TCP port"),
    ({"partitions": 0}, "partitions must be >= 1"),
    ({"rating_min": 5}, "rating_min must be below rating_max"),
    ({"top_k": 101}, "top_k must be within 1..100"),
    ({"api_batch_size": 201}, "api_batch_size must be within 1..200"),
    ({"learning_rate": 1.0}, "learning_rate must be within (0, 1)"),
    ({"topic": "  "}, "topic must not be empty"),
    ({"event_loop": "tokio"}, "event_loop must be aio or uvloop"),
    ({"broker": "localhost:9092"}, "must look like kafka://host:port"),
    ({"nonsense": 1, "also": 2}, "unknown setting(s): also, nonsense"),
])
def test_invalid_settings_fail_with_one_clear_message(raw, message):
    with pytest.raises(SettingsError) as info:
        Settings.from_mapping(raw)
    assert message in str(info.value)


def test_env_errors_name_the_variable():
    with pytest.raises(SettingsError, match="RECSTREAM_WEB_PORT = 'x'"):
        Settings.from_env({"RECSTREAM_WEB_PORT": "x"})


def test_broker_urls():
    s = Settings.from_mapping({"broker": "kafka://a:9092;b:9093, c:9094"})
    assert s.broker_url == "kafka://a:9092;b:9093, c:9094"
    assert s.bootstrap_servers == ["a:9092", "b:9093", "c:9094"]
    assert Settings(embedded_broker_port=9999).bootstrap_servers == ["127.0.0.1:9999"]


def test_fixture_settings(settings, tmp_path):
    assert settings.data_path.parent == tmp_path
    assert 1 <= settings.web_port <= 65535


def test_worker_refuses_uvloop_when_it_is_not_installed(monkeypatch, capsys):
    """RECSTREAM_EVENT_LOOP=uvloop without uvloop: one clear line and exit 2, before Faust."""
    import importlib.util

    from recstream import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvloop" else real(name, *a))
    monkeypatch.setenv("RECSTREAM_EVENT_LOOP", "uvloop")
    monkeypatch.delenv("FAUST_LOOP", raising=False)
    assert cli.main(["worker", "--help"]) == 2
    assert "uvloop is not installed" in capsys.readouterr().err
    assert "FAUST_LOOP" not in os.environ
