"""wa_tasks.settings: WA_* settings, the derived URLs and a display that hides secrets."""

import os
import re

import pytest
from pydantic import ValidationError

from wa_tasks.settings import Settings

DB_PASSWORD = "secretpw"
API_KEY = "api-key-4f9a1c"
ENCRYPTION_KEY = "enc-key-b7e2d0"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path):
    # Settings read WA_* variables, and the default data_dir is relative to the working directory.
    for name in list(os.environ):
        if name.upper().startswith("WA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_the_default_database_is_a_sqlite_file_under_data_dir(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")

    assert settings.database == f"sqlite:///{tmp_path / 'data' / 'wa-tasks.db'}"


def test_the_default_data_dir_is_var_in_the_working_directory(tmp_path):
    settings = Settings()

    assert settings.data_path == (tmp_path / "var").resolve()
    assert settings.database == f"sqlite:///{(tmp_path / 'var').resolve() / 'wa-tasks.db'}"


def test_a_configured_database_url_is_used_unchanged():
    url = "postgresql://u:pw@db.example:5432/billing"

    assert Settings(database_url=url).database == url


def test_without_a_redis_url_the_embedded_redis_socket_is_used(tmp_path):
    settings = Settings(data_dir=tmp_path)
    socket = tmp_path.resolve() / "redis.sock"

    assert settings.embedded_redis is True
    assert settings.redis_socket == socket
    assert settings.redis == f"unix://{socket}?db=0"
    assert settings.broker_url == f"redis+socket://{socket}?virtual_host=0"


@pytest.mark.parametrize("url", ["redis://h:1/2", "redis://:pw@h:6379/0", "rediss://h:6380/1"])
def test_a_configured_network_redis_is_used_unchanged_for_both(url):
    settings = Settings(redis_url=url)

    assert settings.embedded_redis is False
    assert settings.redis == url
    assert settings.broker_url == url


def test_a_unix_socket_url_converts_to_the_kombu_form_for_the_broker():
    settings = Settings(redis_url="unix:///x/y.sock?db=3")

    assert settings.redis == "unix:///x/y.sock?db=3"
    assert settings.broker_url == "redis+socket:///x/y.sock?virtual_host=3"


def test_a_unix_socket_url_without_db_uses_db_0():
    assert Settings(redis_url="unix:///x/y.sock").broker_url == "redis+socket:///x/y.sock?virtual_host=0"


def test_a_kombu_socket_url_converts_to_the_redis_py_form():
    settings = Settings(redis_url="redis+socket:///x/y.sock?virtual_host=4")

    assert settings.redis == "unix:///x/y.sock?db=4"
    assert settings.broker_url == "redis+socket:///x/y.sock?virtual_host=4"


def test_settings_are_read_from_wa_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("WA_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("WA_REDIS_URL", "redis://h:1/2")
    monkeypatch.setenv("WA_PACE_SECONDS", "2.5")
    monkeypatch.setenv("WA_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("WA_DEFAULT_REGION", "gb")
    monkeypatch.setenv("WA_LOG_LEVEL", "debug")

    settings = Settings()

    assert settings.data_path == (tmp_path / "d").resolve()
    assert settings.database == f"sqlite:///{(tmp_path / 'd').resolve() / 'wa-tasks.db'}"
    assert settings.redis == settings.broker_url == "redis://h:1/2"
    assert settings.pace_seconds == 2.5
    assert settings.max_attempts == 5
    assert settings.default_region == "GB"
    assert settings.log_level == "DEBUG"


def test_an_environment_unix_socket_redis_is_converted_for_the_broker(monkeypatch):
    monkeypatch.setenv("WA_REDIS_URL", "unix:///x/y.sock?db=3")

    assert Settings().broker_url == "redis+socket:///x/y.sock?virtual_host=3"


def test_defaults_match_the_seed():
    settings = Settings()

    assert settings.pace_seconds == 1.0
    assert settings.max_attempts == 3
    assert settings.default_region == "ID"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pace_seconds", -1),
        ("pace_seconds", -0.001),
        ("max_attempts", 0),
        ("visibility_timeout", 60),
        ("sim_failure_rate", 1.5),
    ],
)
def test_out_of_range_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ValidationError) as info:
        Settings(**{field: value})

    assert field in str(info.value)


def test_a_negative_pace_from_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("WA_PACE_SECONDS", "-1")

    with pytest.raises(ValidationError) as info:
        Settings()

    assert "pace_seconds" in str(info.value)


def test_a_zero_pace_is_allowed():
    assert Settings(pace_seconds=0).pace_seconds == 0.0


def test_describe_hides_keys_and_database_passwords():
    settings = Settings(
        database_url=f"postgresql://u:{DB_PASSWORD}@h/db",
        redis_url="redis://:redispw@h:6379/0",
        api_key=API_KEY,
        encryption_key=ENCRYPTION_KEY,
    )

    shown = settings.describe()
    everything = " ".join(shown.values()) + " ".join(shown)
    for secret in (DB_PASSWORD, "redispw", API_KEY, ENCRYPTION_KEY):
        assert secret not in everything
    assert shown["database"] == "postgresql://u:***@h/db"
    assert shown["redis"] == "redis://:***@h:6379/0"
    assert shown["api_key"] == "set"
    assert shown["encryption_key"] == "set"


def test_describe_hides_secrets_given_through_the_environment(monkeypatch):
    monkeypatch.setenv("WA_DATABASE_URL", f"postgresql://u:{DB_PASSWORD}@h/db")
    monkeypatch.setenv("WA_API_KEY", API_KEY)
    monkeypatch.setenv("WA_ENCRYPTION_KEY", ENCRYPTION_KEY)

    everything = " ".join(Settings().describe().values())

    for secret in (DB_PASSWORD, API_KEY, ENCRYPTION_KEY):
        assert secret not in everything


def test_describe_says_when_keys_are_missing_and_the_redis_is_embedded(tmp_path):
    shown = Settings(data_dir=tmp_path).describe()

    assert shown["api_key"] == "not set"
    assert shown["encryption_key"] == f"from {tmp_path.resolve() / 'encryption.key'}"
    assert shown["redis"].endswith(" (embedded)")
    assert shown["data_dir"] == str(tmp_path.resolve())
    assert shown["pace_seconds"] == "1.0"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("status_webhook_url", "billing.example.com/hook", "WA_STATUS_WEBHOOK_URL must be an http:// or https:// URL"),
        (
            "status_webhook_url",
            "ftp://billing.example.com/",
            "WA_STATUS_WEBHOOK_URL must be an http:// or https:// URL",
        ),
        ("status_hook", "https://billing.example.com/hook", "WA_STATUS_HOOK must be celery:<task name>[@<queue>]"),
        ("status_hook", "celery:@billing", "WA_STATUS_HOOK must be celery:<task name>[@<queue>]"),
    ],
)
def test_a_status_target_that_cannot_work_is_refused_at_start(name, value, says):
    with pytest.raises(ValidationError, match=re.escape(says)):
        Settings(**{name: value})


def test_status_targets_are_read_trimmed():
    settings = Settings(status_webhook_url=" https://billing.example.com/wa ", status_hook="celery:billing.on_status")
    assert (settings.status_webhook_url, settings.status_hook) == (
        "https://billing.example.com/wa",
        "celery:billing.on_status",
    )
    assert Settings(status_hook="", status_webhook_url="").status_hook is None
