"""The agent's settings: flags > environment > file > defaults, and errors that name
what is wrong; the shipped example configuration and systemd unit agree with them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from room_agents.config import (
    BY_NAME,
    CONFIG_ENV,
    OPTIONS,
    AgentConfig,
    ConfigError,
    load,
    merge,
    parse_file,
)

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def test_each_source_overrides_the_one_below_it() -> None:
    file = {"server": "http://file:1", "fps": 25, "camera": "lavfi:testsrc2", "label": "File"}
    env = {"TELECENTRE_AGENT_FPS": "20", "TELECENTRE_AGENT_LABEL": "Env"}
    flags = {"fps": "15"}
    loaded = merge(flags, env, file, "agent.toml")
    config = loaded.config
    assert config.fps == 15 and loaded.origins["fps"] == "flag"
    assert config.label == "Env" and loaded.origins["label"] == "env"
    assert config.camera == "lavfi:testsrc2" and loaded.origins["camera"] == "file"
    assert config.server_url == "ws://file:1/ws" and loaded.origins["server"] == "file"
    assert config.width == 640 and loaded.origins["width"] == "default"
    assert config.readiness_lead == 600.0 and config.screen == "headless"
    assert loaded.describe()["fps"] == {"value": 15, "from": "flag"}


def test_an_empty_environment_variable_is_unset_and_an_absent_flag_is_none() -> None:
    loaded = merge(
        {"server": "http://x:1", "fps": None}, {"TELECENTRE_AGENT_FPS": ""}, {"fps": 10}, "f"
    )
    assert loaded.config.fps == 10 and loaded.origins["fps"] == "file"


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "agent.toml"
    conf.parent.mkdir()
    conf.write_text('server = "https://tc.example"\nkey_file = "room.key"\ncache_dir = "/var/c"\n')
    config = load({"config": str(conf)}, env={}).config
    assert config.key_file == tmp_path / "etc" / "room.key"
    assert config.cache_dir == Path("/var/c")
    assert config.server_url == "wss://tc.example/ws"


def test_the_file_may_come_from_the_environment(tmp_path: Path) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text('server = "http://a:1"\nfps = 12\n')
    assert load({}, env={CONFIG_ENV: str(conf)}).config.fps == 12
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load({"config": str(tmp_path / "missing.toml")}, env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('server = "http://a:1"\ncamra = "v4l2:/dev/video0"\n', "unknown key 'camra'"),
        ('server = "http://a:1"\n[media]\ncamera = "synthetic"\n', "unknown key 'media'"),
        ('server = "http://a:1"\nkey = "tck_secret"\n', "does not belong in the configuration"),
        ('server = "http://a:1\n', "not valid TOML"),
    ],
)
def test_file_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_file(text, "/etc/telecentre/agent.toml")
    assert "/etc/telecentre/agent.toml" in str(err.value)
    assert "tck_secret" not in str(err.value)


@pytest.mark.parametrize(
    ("flags", "env", "file", "message"),
    [
        ({}, {}, {"server": "http://a:1", "fps": "30"}, r"f: fps: expected an integer, got '30'"),
        ({}, {}, {"server": "http://a:1", "fps": True}, "expected an integer"),
        ({}, {"TELECENTRE_AGENT_FPS": "abc"}, {"server": "http://a:1"}, "TELECENTRE_AGENT_FPS"),
        ({"fps": "0"}, {}, {"server": "http://a:1"}, r"--fps: 0 is below the minimum, 1"),
        ({"width": "641"}, {}, {"server": "http://a:1"}, "width 641 must be even"),
        ({}, {}, {"server": "http://a:1", "screen": "window"}, "not one of headless"),
        ({}, {}, {"server": "http://a:1", "camera": "webcam"}, "camera: camera 'webcam'"),
        ({}, {}, {"server": "http://a:1", "speaker": "lavfi:sine"}, "speaker 'lavfi:sine'"),
        ({}, {}, {"server": "http://a:1", "microphone": "none"}, "cannot be none"),
        ({}, {"TELECENTRE_AGENT_CAMRA": "x"}, {"server": "http://a:1"}, "TELECENTRE_AGENT_CAMRA"),
        ({}, {}, {}, "no server"),
        ({"server": "ftp://a"}, {}, {}, "must start with http"),
    ],
)
def test_bad_values_are_errors_that_say_where(
    flags: dict[str, str], env: dict[str, str], file: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        merge(flags, env, file, "f")


def test_log_level_is_case_insensitive_and_the_key_never_shows() -> None:
    loaded = merge({"key": "tck_secret", "log_level": "debug"}, {}, {"server": "http://a:1"}, "f")
    assert loaded.config.log_level == "DEBUG"
    assert loaded.config.read_key() == "tck_secret"
    assert "tck_secret" not in repr(loaded.config)
    assert "tck_secret" not in str(loaded.describe())


def test_the_example_file_documents_every_key_and_loads(tmp_path: Path) -> None:
    text = (DEPLOY / "agent.example.toml").read_text()
    for option in OPTIONS:
        assert f"\n{option.name} = " in text or f"\n# {option.name} = " in text, option.name
    # Uncommented, every documented key must load.
    uncommented = "\n".join(
        line[2:] if re.match(r"# (\w+) = ", line) and line[2:].split(" ")[0] in BY_NAME else line
        for line in text.splitlines()
    )
    data = tomllib.loads(uncommented)
    assert set(data) == set(BY_NAME), set(data) ^ set(BY_NAME)
    merge({}, {}, parse_file(uncommented, "example"), "example", tmp_path)
    loaded = merge({}, {}, parse_file(text, "example"), "example", tmp_path)
    assert loaded.config.camera.startswith("v4l2:")


def test_the_systemd_unit_stops_with_sigterm_and_restarts() -> None:
    unit = (DEPLOY / "telecentre-agent.service").read_text()
    lines = {
        line.split("=", 1)[0]: line.split("=", 1)[1] for line in unit.splitlines() if "=" in line
    }
    assert lines["Restart"] == "always" and lines["RestartSec"] == "2"
    assert lines["KillSignal"] == "SIGTERM" and int(lines["TimeoutStopSec"]) >= 10
    assert "agent run --config /etc/telecentre/agent.toml" in lines["ExecStart"]
    assert lines["User"] == "telecentre-agent"
    assert "/var/cache/telecentre-agent" in lines["ReadWritePaths"]
    assert lines["EnvironmentFile"].startswith("-/etc/telecentre/")


def test_defaults_match_the_dataclass() -> None:
    """The declarative table and the dataclass agree, so a test that builds an
    AgentConfig by hand gets the same defaults as the command line."""
    plain = AgentConfig(server_url="ws://a/ws")
    for option in OPTIONS:
        if option.name != "server":
            assert getattr(plain, option.target) == option.default, option.name
