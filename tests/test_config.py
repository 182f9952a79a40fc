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
    # Relative to the config file's folder, wherever the command runs.
    assert settings.database.url == f"sqlite:///{tmp_path.resolve()}/listrak_source.db"
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
            "config.toml: listrak.client_secret: missing (set it in /",
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


def test_the_old_lease_ttl_key_says_what_replaced_it(tmp_path: Path) -> None:
    message = error_for(tmp_path, GOOD + '[delivery]\nlease_ttl = "10m"\n')
    assert message.endswith(
        "delivery: lease_ttl is gone: a list's lock is freed when its holder dies; "
        "the watchdog's bound is now schedule.stall_timeout"
    )
    settings = load_settings(write(tmp_path, GOOD.replace('"5m"', '"5m"\nstall_timeout = "3m"')))
    assert settings.schedule.stall_timeout == timedelta(minutes=3)


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


@pytest.mark.parametrize(
    ("trait", "expected"),
    [
        ("", "lists[1].trait: is empty"),
        ("x_{list_id", "lists[1].trait: is not a trait name"),
        ("Listrak list {list_id}", "lists[1].trait: is not a trait name"),
        # Over 100 characters once list 1002's id is filled in, though not with a 1.
        ("a" + "{list_id}" * 25, "lists[1].trait: is not a trait name"),
        ("email", "lists[1].trait: 'email' is a trait Segment reserves"),
        ("userId", "'userId' is a trait Segment reserves"),
        ("anonymous_id", "'anonymous_id' is a trait Segment reserves"),
        ("Listrak_list_1001", "lists 1001 and 1002 set the same trait Listrak_list_1001"),
    ],
)
def test_a_trait_must_be_a_name_of_its_own(tmp_path: Path, trait: str, expected: str) -> None:
    text = GOOD.replace('trait = "listrak_list_{list_id}"', f"trait = {trait!r}")
    assert expected in error_for(tmp_path, text)


def test_a_trait_may_name_its_list_in_any_case(tmp_path: Path) -> None:
    text = GOOD.replace('trait = "listrak_list_{list_id}"', 'trait = "Shop-List_{list_id}"')
    assert load_settings(write(tmp_path, text)).lists[1].trait_name == "Shop-List_1002"


def test_a_database_password_is_a_secret_even_in_a_url_that_does_not_parse() -> None:
    from listrak_source.config import url_passwords

    assert url_passwords("postgres//user:hunter2@localhost/db") == ["hunter2"]
    assert url_passwords("postgresql+psycopg://u:p%40ss@h/db") == ["p%40ss", "p@ss"]
    assert url_passwords("sqlite:///state.db") == url_passwords("postgresql://u@h/db") == []


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LISTRAK_SOURCE_LISTS", "garbage", "LISTRAK_SOURCE_LISTS"),
        (
            "LISTRAK_SOURCE_LISTS",
            '[{"id": 5, "trait": "news"}, {"id": 6, "trait": "News"}]',
            "LISTRAK_SOURCE_LISTS: lists: lists 5 and 6 set the same trait News",
        ),
        ("LISTRAK_SOURCE_SCHEDULE", "x", "LISTRAK_SOURCE_SCHEDULE"),
        (
            "LISTRAK_SOURCE_LISTS__0__TRAIT",
            "zz",
            "LISTRAK_SOURCE_LISTS__0__TRAIT: lists: set the lists whole, as JSON in "
            "LISTRAK_SOURCE_LISTS",
        ),
        ("LISTRAK_SOURCE_SCHEDULE__INTERVAL", "1000000000d", "schedule.interval"),
        ("LISTRAK_SOURCE_SCHEDULE__INTERVAL", "99999999999999999999s", "schedule.interval"),
        ("LISTRAK_SOURCE_LISTRAK__TIMEOUT", "inf", "listrak.timeout"),
        ("LISTRAK_SOURCE_LISTRAK__TIMEOUT", "nan", "listrak.timeout"),
        ("LISTRAK_SOURCE_DELIVERY__MAX_REMOVAL_RATIO", "nan", "delivery.max_removal_ratio"),
    ],
)
def test_bad_environment_values_are_one_config_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    message = error_for(tmp_path, GOOD)
    assert expected in message and value not in message


AUDIENCES = """
[receiver]
port = 8099
secrets = ["receiver-secret-1", "receiver-secret-2"]
shared_secret = "signing-secret-shared"

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
    for secret in ("receiver-secret-1", "receiver-secret-2", "signing-secret-shared"):
        assert secret in settings.secrets()


def test_no_audiences_by_default(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    assert (settings.receiver, settings.audiences, settings.audience_fields(1001)) == (None, [], [])


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("id = 1002", f"id = {2**63}"), "lists[1].id"),
        # A list's run lock on PostgreSQL keys it by 32 bits.
        (("id = 1002", f"id = {2**32}"), "lists[1].id"),
        # TOML's true is no number, though pydantic reads it as 1.
        (("id = 1002", "id = true"), "lists[1].id: is true or false where a number goes"),
        (("user_id_field = 678", "user_id_field = false"), "lists[0].user_id_field: is true"),
        (("user_id_field = 678", f"user_id_field = {2**63}"), "lists[0].user_id_field"),
        (('interval = "5m"', "interval = inf"), "schedule.interval"),
        (('interval = "5m"', 'interval = "4000d"'), "schedule.interval"),
    ],
)
def test_values_beyond_what_can_be_stored_or_scheduled(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    assert expected in error_for(tmp_path, GOOD.replace(*edit, 1))


def test_an_environment_variable_that_names_no_setting_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRACK__CLIENT_SECRET", "typo-secret-value")
    monkeypatch.setenv("LISTRAK_SOURCE_SEGMENT__HOST", "https://events.eu1.segmentapis.com")
    with caplog.at_level("WARNING"):
        load_settings(write(tmp_path, GOOD))
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1
    assert "LISTRAK_SOURCE_LISTRACK__CLIENT_SECRET" in warned[0]
    assert "typo-secret-value" not in warned[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LISTRAK_SOURCE_LISTRAK__TIMEOUT", "1e300"),
        ("LISTRAK_SOURCE_LISTRAK__REQUESTS_PER_SECOND", "1e-300"),
        ("LISTRAK_SOURCE_SEGMENT__MAX_BACKOFF_SECONDS", "1e300"),
    ],
)
def test_numbers_a_socket_or_sleep_cannot_take_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert name.removeprefix("LISTRAK_SOURCE_").replace("__", ".").lower() in error_for(
        tmp_path, GOOD
    )


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("segment.host", "htp://api.segment.io"),
        ("segment.host", "https://"),
        ("segment.host", "api.segment.io"),
        ("listrak.base_url", "ftp://api.listrak.com/email/v1"),
        ("listrak.auth_url", "https://user:pw-in-url@:99999/x"),
    ],
)
def test_urls_must_be_http_with_a_host(tmp_path: Path, key: str, url: str) -> None:
    section, name = key.split(".")
    text = GOOD.replace(f"[{section}]\n", f'[{section}]\n{name} = "{url}"\n', 1)
    message = error_for(tmp_path, text)
    assert f"{key}: is not an http(s) URL" in message and url not in message


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
