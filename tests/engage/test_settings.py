"""Receiver settings: defaults, and secrets that could never match are refused at load."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from listrak_source.config import describe_validation
from listrak_source.engage.settings import DEFAULT_MAX_BODY_BYTES, ReceiverSettings

TOKEN = "receiver-token-0001"
OLD, NEW = "old-receiver-token", "new-receiver-token"
SIGN, SIGN_NEXT = "shared-signing-secret", "shared-signing-secret-2"


def test_defaults() -> None:
    settings = ReceiverSettings(secrets=[TOKEN])
    assert (settings.host, settings.port, settings.access_log) == ("127.0.0.1", 8080, False)
    assert settings.shared_secret is None and settings.signing_secrets() == []
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 8 * 1024 * 1024


def test_two_secrets_for_a_rotation_and_every_value_is_listed_as_secret() -> None:
    settings = ReceiverSettings(secrets=[OLD, NEW], shared_secret=SIGN)
    assert settings.secret_values() == [OLD, NEW, SIGN]
    assert settings.signing_secrets() == [SIGN.encode()]
    assert OLD not in repr(settings)


def test_two_shared_secrets_for_a_rotation() -> None:
    settings = ReceiverSettings(secrets=[TOKEN], shared_secrets=[SIGN, SIGN_NEXT])
    assert settings.signing_secrets() == [SIGN.encode(), SIGN_NEXT.encode()]
    assert settings.secret_values() == [TOKEN, SIGN, SIGN_NEXT]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"secrets": []}, "secrets: List should have at least 1 item"),
        ({"secrets": [OLD, NEW, TOKEN]}, "secrets: List should have at most 2 items"),
        ({"secrets": [""]}, "secrets: a receiver secret must not be empty"),
        ({"secrets": ["has space" * 2]}, "secrets: a receiver secret must be visible"),
        ({"secrets": ["caf\u00e9" * 4]}, "secrets: a receiver secret must be visible"),
        ({"secrets": ["x"]}, "secrets: a receiver secret must be at least 16 characters"),
        ({"secrets": [TOKEN, "a" * 15]}, "secrets: a receiver secret must be at least 16"),
        ({"secrets": [TOKEN], "shared_secret": ""}, "shared_secret: shared_secret"),
        ({"secrets": [TOKEN], "shared_secret": "k"}, "shared_secret: a shared secret must be at"),
        ({"secrets": [TOKEN], "shared_secrets": [SIGN, "k"]}, "shared_secrets: a shared secret"),
        ({"secrets": [TOKEN], "shared_secrets": [SIGN] * 3}, "shared_secrets: List should have"),
        (
            {"secrets": [TOKEN], "shared_secret": SIGN, "shared_secrets": [SIGN_NEXT]},
            "set shared_secret or shared_secrets, not both",
        ),
        ({"secrets": [TOKEN], "port": 70000}, "port: Input should be less than or equal"),
        ({"secrets": [TOKEN], "max_body_bytes": 10}, "max_body_bytes: Input should be greater"),
        ({"secrets": [TOKEN], "path": "/x"}, "path: unknown key"),
        ({}, "secrets: missing"),
    ],
)
def test_bad_values_are_refused_in_one_line(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ReceiverSettings.model_validate(values)
    line = describe_validation(caught.value)
    assert line.replace("[0]", "").startswith(message)
    assert "\n" not in line


def test_a_secret_is_never_echoed_in_the_error() -> None:
    with pytest.raises(ValidationError) as caught:
        ReceiverSettings.model_validate({"secrets": ["sup3r secret"]})
    assert "sup3r" not in describe_validation(caught.value)


def test_port_zero_asks_for_any_free_port() -> None:
    assert ReceiverSettings(secrets=[TOKEN], port=0).port == 0
