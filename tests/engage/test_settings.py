"""Receiver settings: defaults, and secrets that could never match are refused at load."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from listrak_source.config import describe_validation
from listrak_source.engage.settings import DEFAULT_MAX_BODY_BYTES, ReceiverSettings


def test_defaults() -> None:
    settings = ReceiverSettings(secrets=["token-1"])
    assert (settings.host, settings.port, settings.access_log) == ("127.0.0.1", 8080, False)
    assert settings.shared_secret is None
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 8 * 1024 * 1024


def test_two_secrets_for_a_rotation_and_every_value_is_listed_as_secret() -> None:
    settings = ReceiverSettings(secrets=["old-token", "new-token"], shared_secret="sign me")
    assert settings.secret_values() == ["old-token", "new-token", "sign me"]
    assert "old-token" not in repr(settings)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"secrets": []}, "secrets: List should have at least 1 item"),
        ({"secrets": ["a", "b", "c"]}, "secrets: List should have at most 2 items"),
        ({"secrets": [""]}, "secrets: a receiver secret must not be empty"),
        ({"secrets": ["has space"]}, "secrets: a receiver secret must be visible"),
        ({"secrets": ["caf\u00e9"]}, "secrets: a receiver secret must be visible"),
        ({"secrets": ["ok"], "shared_secret": ""}, "shared_secret: shared_secret"),
        ({"secrets": ["ok"], "port": 70000}, "port: Input should be less than or equal"),
        ({"secrets": ["ok"], "max_body_bytes": 10}, "max_body_bytes: Input should be greater"),
        ({"secrets": ["ok"], "path": "/x"}, "path: unknown key"),
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
    assert ReceiverSettings(secrets=["t"], port=0).port == 0
