"""Settings of the audience direction: the audience table and the receiver Segment posts to."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, SecretStr, field_validator, model_validator

from ..sections import Section
from .mapping import AudienceMapping, Mappings

MIB = 1024 * 1024
# Segment batches up to 4,000 events (1,000 by default) and drops a whole batch answered 413.
# Engage's membership event is about 450 bytes, so its largest batch is about 1.8 MiB; 8 MiB
# leaves 2 KiB an event at 4,000 and 8 KiB at 1,000. The cap also bounds memory: a full
# 8 MiB body of small events parses into about 120 MiB of Python objects. Raise it when
# Engage is set to add many traits to each event.
DEFAULT_MAX_BODY_BYTES = 8 * MIB
DEFAULT_MAX_BYTES_IN_FLIGHT = 2 * DEFAULT_MAX_BODY_BYTES


class AudienceSettings(Section):
    """One row of the audience table: this audience sets this profile field on this list."""

    key: str = Field(min_length=1)
    list_id: int = Field(gt=0)
    field_id: int = Field(gt=0)
    # Set it to take the audience only from one Engage space; unset takes it from any.
    space_id: str | None = Field(default=None, min_length=1)

    def to_mapping(self) -> AudienceMapping:
        """The pure form the receiver and the store work with."""
        return AudienceMapping(self.key, self.list_id, self.field_id, self.space_id)


def build_mappings(audiences: Sequence[AudienceSettings]) -> Mappings:
    """The resolver for these rows; a MappingError (a ValueError) names the first conflict."""
    return Mappings(item.to_mapping() for item in audiences)


# A secret anyone could guess is no secret; a short one also turns up inside ordinary words.
MIN_SECRET_LENGTH = 16


def _strong(secret: SecretStr, what: str) -> SecretStr:
    value = secret.get_secret_value()
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"{what} must be at least {MIN_SECRET_LENGTH} characters")
    return secret


def _header_safe(secret: SecretStr, what: str) -> SecretStr:
    value = _strong(secret, what).get_secret_value()
    # It travels in a header: only visible ASCII survives the trip unchanged.
    if not all("!" <= char <= "~" for char in value):
        raise ValueError(f"{what} must be visible ASCII characters without spaces")
    return secret


class ReceiverSettings(Section):
    """Where the receiver listens and what a request must carry to be believed."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Two during a rotation: add the new one, move Segment over, then drop the old.
    secrets: list[SecretStr] = Field(min_length=1, max_length=2)
    # The Webhooks destination's shared secret: when set, every request must be signed.
    # shared_secrets holds two during a rotation, as secrets does.
    shared_secret: SecretStr | None = None
    shared_secrets: list[SecretStr] = Field(default_factory=list, max_length=2)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    # Bodies held at once across requests, from the first byte read to the commit's end;
    # past it a request is answered 503 (Segment retries). Parsed, a body of small events
    # takes about 15 times its size, so this bounds the worker's memory.
    max_bytes_in_flight: int = Field(default=DEFAULT_MAX_BYTES_IN_FLIGHT, ge=1024)
    # A connection has this long to send a request's head (from its opening, or from the
    # end of its previous answer), and a request this long more to send its body: a client
    # that sends nothing, or a byte at a time, cannot hold a socket open.
    header_timeout: float = Field(default=10.0, gt=0, le=3600)
    body_timeout: float = Field(default=30.0, gt=0, le=3600)
    # Open connections at most; one more is closed at once. The unit's descriptors (1,024
    # under systemd) are shared with the store and the Listrak and Segment clients.
    max_connections: int = Field(default=128, ge=2, le=10_000)
    access_log: bool = False

    @field_validator("secrets")
    @classmethod
    def _usable_secrets(cls, values: list[SecretStr]) -> list[SecretStr]:
        return [_header_safe(value, "a receiver secret") for value in values]

    @field_validator("shared_secret")
    @classmethod
    def _usable_shared_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("shared_secret must not be empty (leave it out to not sign)")
        return value if value is None else _strong(value, "a shared secret")

    @field_validator("shared_secrets")
    @classmethod
    def _usable_shared_secrets(cls, values: list[SecretStr]) -> list[SecretStr]:
        return [_strong(value, "a shared secret") for value in values]

    @model_validator(mode="after")
    def _one_way_to_sign(self) -> ReceiverSettings:
        if self.shared_secret is not None and self.shared_secrets:
            raise ValueError("set shared_secret or shared_secrets, not both")
        return self

    @model_validator(mode="after")
    def _room_for_the_largest_body(self) -> ReceiverSettings:
        if self.max_bytes_in_flight < self.max_body_bytes:
            raise ValueError(
                f"max_bytes_in_flight ({self.max_bytes_in_flight}) must be at least "
                f"max_body_bytes ({self.max_body_bytes}), or no body that large is ever taken"
            )
        return self

    def signing_secrets(self) -> list[bytes]:
        """The shared secrets a signature may be made with; none means requests are unsigned."""
        values = [self.shared_secret] if self.shared_secret is not None else self.shared_secrets
        return [value.get_secret_value().encode() for value in values]

    def secret_values(self) -> list[str]:
        """Values that must never be printed or logged."""
        signing = [value.decode() for value in self.signing_secrets()]
        return [secret.get_secret_value() for secret in self.secrets] + signing
