"""The environment of a CLI subprocess: the machine's service settings removed, the test's own added."""

from __future__ import annotations

import os

from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_SK

SETTINGS_PREFIXES = ("GES_RETENTION_", "HUAWEICLOUD_SDK_")


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any service setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    env.update(settings)
    return env


def emulator_env(url: str, **settings: str) -> dict[str, str]:
    """Settings that point the service at an emulator with its default AK/SK and no rate limit, plus `settings`."""
    return clean_env(
        **{
            "GES_RETENTION_ENDPOINT": url,
            "GES_RETENTION_AK": DEFAULT_AK,
            "GES_RETENTION_SK": DEFAULT_SK,
            "GES_RETENTION_RATE_LIMIT": "0",
            **settings,
        }
    )
