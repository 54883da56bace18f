"""Credentials lookup order and settings validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import ApiSettings, Credentials, Settings, load_credentials
from pipeline.errors import ConfigError
from pipeline.models import ImagePolicy


def test_environment_wins_over_the_configure_file(tmp_path: Path) -> None:
    conf = tmp_path / "configure"
    conf.write_text("[DEFAULT]\nncloud_access_key_id = FILE-AK\nncloud_secret_access_key = file-secret\n")
    env = {"NCLOUD_ACCESS_KEY": "ENV-AK", "NCLOUD_SECRET_KEY": "env-secret"}
    assert load_credentials(env, conf) == Credentials("ENV-AK", "env-secret")
    assert load_credentials({}, conf) == Credentials("FILE-AK", "file-secret")


def test_half_a_pair_and_nothing_at_all_are_one_sentence_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be set together; NCLOUD_SECRET_KEY is empty"):
        load_credentials({"NCLOUD_ACCESS_KEY": "AK"}, tmp_path / "none")
    with pytest.raises(ConfigError, match="No API credentials found") as info:
        load_credentials({}, tmp_path / "none")
    assert "\n" not in str(info.value)


def test_secret_never_in_repr() -> None:
    creds = Credentials("AK", "super-secret-value")
    api = ApiSettings(workspace="w", credentials=creds)
    assert "super-secret-value" not in repr(creds) and "super-secret-value" not in repr(api)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workspace": ""}, "workspace"),
        ({"endpoint": "ftp://x"}, "--endpoint"),
        ({"rate": -1}, "--rate"),
        ({"concurrency": 0}, "--concurrency"),
        ({"presign_path": "/no/placeholder"}, "presign-path"),
    ],
)
def test_api_settings_validation(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"workspace": "w", "credentials": Credentials("a", "b")}
    with pytest.raises(ConfigError, match=message):
        ApiSettings(**(base | kwargs))  # type: ignore[arg-type]


def test_settings_validation() -> None:
    api = ApiSettings(workspace="w", credentials=Credentials("a", "b"))
    with pytest.raises(ConfigError, match=r"\.parquet or \.csv"):
        Settings(api=api, out=Path("r.json"))
    with pytest.raises(ConfigError, match="--max-side"):
        Settings(api=api, policy=ImagePolicy(max_side=100))
    assert Settings(api=api, out=Path("r.CSV")).out == Path("r.CSV")
