"""Config loading: the file, the environment winning, and one clear line per mistake."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from listrak_source.config import Settings, load_settings, parse_duration
from listrak_source.errors import ConfigError

GOOD = """
[listrak]
client_id = "cid"
client_secret = "very-secret-value"

[segment]
write_key = "wkwkwkwkwkwk"

[schedule]
interval = "5m"

[[lists]]
id = 1001
user_id_field = 678

[[lists]]
id = 1002
trait = "listrak_list_{list_id}"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("LISTRAK_SOURCE_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    assert "very-secret-value" not in message
    return message


def test_loads_file_with_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.listrak.client_secret.get_secret_value() == "very-secret-value"
    assert settings.listrak.base_url == "https://api.listrak.com/email/v1"
    assert settings.segment.host == "https://api.segment.io"
    assert settings.database.url == "sqlite:///listrak_source.db"
    assert settings.schedule.interval == timedelta(minutes=5)
    assert [cfg.trait_name for cfg in settings.lists] == ["Listrak_list_1001", "listrak_list_1002"]
    assert "very-secret-value" not in repr(settings)


def test_environment_wins_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__CLIENT_SECRET", "from-env")
    monkeypatch.setenv("LISTRAK_SOURCE_SEGMENT__HOST", "http://127.0.0.1:9")
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.listrak.client_secret.get_secret_value() == "from-env"
    assert settings.listrak.client_id == "cid"
    assert settings.segment.host == "http://127.0.0.1:9"


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_CONFIG", str(write(tmp_path, GOOD)))
    assert load_settings().lists[0].id == 1001


def test_secret_only_in_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__CLIENT_SECRET", "env-only")
    settings = load_settings(
        write(tmp_path, GOOD.replace('client_secret = "very-secret-value"', ""))
    )
    assert settings.listrak.client_secret.get_secret_value() == "env-only"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("client_id", "client_idd"), "listrak.client_idd: unknown key"),
        (
            ('client_secret = "very-secret-value"', ""),
            "listrak.client_secret: missing (set it in the file or as "
            "LISTRAK_SOURCE_LISTRAK__CLIENT_SECRET)",
        ),
        (("id = 1002", 'id = "abc"'), "lists[1].id: Input should be a valid integer"),
        (('interval = "5m"', 'interval = "soon"'), "schedule.interval"),
        (("id = 1002", "id = 1001"), "list 1001 is configured twice"),
        (("[schedule]", "[shedule]"), "shedule: unknown key"),
        (("user_id_field = 678", "user_id_field = -1"), "lists[0].user_id_field"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    assert expected in error_for(tmp_path, GOOD.replace(*edit, 1))


def test_not_toml(tmp_path: Path) -> None:
    assert "not valid TOML" in error_for(tmp_path, "[listrak\n")


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_list_by_id_unknown(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="list 9 is not in the configuration"):
        settings.list_by_id(9)


def test_from_values_ignores_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_DATABASE__URL", "postgresql://prod/db")
    settings = Settings.from_values(
        listrak={"client_id": "a", "client_secret": "b"},
        segment={"write_key": "c"},
        lists=[{"id": 1}],
    )
    assert settings.database.url == "sqlite:///listrak_source.db"


def test_parse_duration() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration(30) == timedelta(seconds=30)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("0m")


def test_the_example_config_documents_every_key() -> None:
    example = (Path(__file__).parent.parent / "config.example.toml").read_text()
    sections = {name: field.annotation for name, field in Settings.model_fields.items()}
    missing = []
    for section, model in sections.items():
        inner = getattr(model, "__args__", (model,))[0]  # list[ListSettings] -> ListSettings
        assert f"[{section}]" in example or f"[[{section}]]" in example, section
        missing += [
            f"{section}.{key}"
            for key in inner.model_fields
            if f"# {key} =" not in example and f"\n{key} =" not in example
        ]
    assert missing == []


AUDIENCES = """
[receiver]
port = 8099
secrets = ["receiver-secret-1", "receiver-secret-2"]
shared_secret = "signing-secret"

[[audiences]]
key = "first_time_shopper"
list_id = 1001
field_id = 901

[[audiences]]
key = "lapsed"
space_id = "spa_1"
list_id = 1002
field_id = 902
"""


def test_audiences_and_receiver_load(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD + AUDIENCES))
    assert settings.receiver is not None and settings.receiver.port == 8099
    assert [(a.key, a.space_id) for a in settings.audiences] == [
        ("first_time_shopper", None),
        ("lapsed", "spa_1"),
    ]
    assert settings.audience_fields(1001) == [901]
    assert settings.push.interval == timedelta(seconds=30)
    assert settings.push.max_contacts_per_request == 1000
    for secret in ("receiver-secret-1", "receiver-secret-2", "signing-secret"):
        assert secret in settings.secrets()


def test_no_audiences_by_default(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    assert (settings.receiver, settings.audiences, settings.audience_fields(1001)) == (None, [], [])


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("list_id = 1002", "list_id = 1003"), "writes list 1003, which is not a configured"),
        (("field_id = 901", "field_id = 678"), "is both user_id_field and an audience's"),
        (
            (
                'key = "lapsed"\nspace_id = "spa_1"\nlist_id = 1002\nfield_id = 902',
                'key = "lapsed"\nlist_id = 1001\nfield_id = 901',
            ),
            "both write list 1001 field 901",
        ),
        (
            ('key = "lapsed"\nspace_id = "spa_1"', 'key = "first_time_shopper"'),
            "audience 'first_time_shopper' is mapped more than once",
        ),
        (("field_id = 901", "field_id = 0"), "audiences[0].field_id"),
        (("shared_secret", "shared_secrett"), "receiver.shared_secrett: unknown key"),
    ],
)
def test_a_bad_audience_table_is_one_line(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    assert expected in error_for(tmp_path, (GOOD + AUDIENCES).replace(*edit, 1))


def test_thirty_profile_fields_a_list_at_most(tmp_path: Path) -> None:
    rows = "".join(
        f'\n[[audiences]]\nkey = "a{n}"\nlist_id = 1001\nfield_id = {1000 + n}\n' for n in range(30)
    )
    message = error_for(tmp_path, GOOD + rows)  # 30 audiences + user_id_field = 31
    assert "list 1001: 31 profile fields" in message
    assert load_settings(write(tmp_path, GOOD.replace("user_id_field = 678", "") + rows))
