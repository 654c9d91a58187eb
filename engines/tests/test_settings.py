"""Engine settings are read once, in web/settings.py, and a bad value stops the start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engines import EngineConfig, EngineConfigError

ROOT = Path(__file__).resolve().parents[2]
SHOW = (
    "from web import settings as s; from engines import EngineConfig; "
    "print(EngineConfig.from_settings(s))"
)


def load_settings(**variables: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBUG": "true", **variables}
    return subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TEXT_ENGINE", "gpt"),
        ("IMAGE_ENGINE", "OpenAI"),
        ("ENGINE_FALLBACK", "sometimes"),
        ("AI_TIMEOUT_SECONDS", "soon"),
        ("AI_TIMEOUT_SECONDS", "0"),
    ],
)
def test_a_bad_engine_setting_fails_naming_its_variable(name: str, value: str) -> None:
    loaded = load_settings(**{name: value})
    assert loaded.returncode != 0
    assert f"ImproperlyConfigured: {name} must be" in loaded.stderr


def test_engine_settings_reach_the_engines_as_one_config() -> None:
    loaded = load_settings(
        TEXT_ENGINE="",
        SPEECH_ENGINE="openai",
        ENGINE_FALLBACK="true",
        AI_BASE_URL="",  # empty means the default
        AI_TIMEOUT_SECONDS="2.5",
    )
    assert loaded.returncode == 0, loaded.stderr
    shown = loaded.stdout
    assert "text='local', speech='openai'" in shown and "fallback=True" in shown
    assert "base_url='https://api.openai.com/v1'" in shown and "timeout_seconds=2.5" in shown


def test_a_config_from_overridden_settings_is_checked_too(settings) -> None:
    settings.TEXT_ENGINE = "gpt"
    with pytest.raises(EngineConfigError, match="TEXT_ENGINE must be local or openai"):
        EngineConfig.from_settings(settings)
