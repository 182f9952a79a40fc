"""Settings from config.toml plus LISTRAK_SOURCE_* environment variables (which win)."""

from __future__ import annotations

import logging
import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from .config_problems import ENV_PREFIX, closest_section, describe_validation
from .engage.mapping import mapping_problems
from .engage.settings import AudienceSettings, ReceiverSettings
from .errors import ConfigError
from .sections import Section as _Section
from .tracking.dates import DEFAULT_ZONE, zone
from .tracking.records import DEFAULT_EVENTS, EVENT_NAMES

log = logging.getLogger(__name__)
DEFAULT_CONFIG = "config.toml"
# Listrak returns at most this many profile fields per contact scan.
MAX_SCAN_FIELDS = 30
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
# LISTRAK_SOURCE_CONFIG names the file; the test suite reads LISTRAK_SOURCE_TEST_POSTGRES.
_NOT_SETTINGS = frozenset({"config", "test_postgres"})
MAX_DURATION = timedelta(days=3650)
# The stores keep ids as 64-bit integers; a list's run lock on PostgreSQL is an advisory
# key whose low 32 bits are the list id (state/locks.py), so list ids stop there.
MAX_ID = 2**63 - 1
MAX_LIST_ID = 2**32 - 1
_URL_PASSWORD = re.compile(r"(?:^|//)[^/@:]*:([^@/]*)@")
# libpq takes a password in the query string too (postgresql://host/db?password=...).
_QUERY_PASSWORD = re.compile(r"[?&](?:ssl)?password=([^&#]*)", re.IGNORECASE)
# sqlite:///relative/path, sqlite:////absolute/path, with a driver or query or not.
_SQLITE_FILE = re.compile(r"^(sqlite(?:\+\w+)?:///)([^?]+)(\?.*)?$")
EXAMPLE = "config.example.toml"


def parse_duration(value: object) -> timedelta:
    """Accept "90s", "15m", "24h", "1d" or a number of seconds: above 0, at most 10 years."""
    seconds = _seconds(value)
    # Also false for NaN; beyond 10 years a schedule's next run no longer fits a datetime.
    if seconds is None or not 0 < seconds <= MAX_DURATION.total_seconds():
        raise ValueError("is not a duration above 0 and up to 10 years, such as 90s, 15m or 1d")
    return timedelta(seconds=seconds)


def _seconds(value: object) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def check_http_url(url: str) -> str:
    """An http(s) URL with a host; the value is not echoed, as it may carry a password."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        ok = False
    if not ok or any(c.isspace() for c in url):
        raise ValueError("is not an http(s) URL with a host name")
    return url


HttpUrl = Annotated[str, AfterValidator(check_http_url)]


def _check_zone(name: str) -> str:
    zone(name)  # raises ValueError with a readable line
    return name


def _check_events(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in EVENT_NAMES]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not one of {', '.join(EVENT_NAMES)}")
    return list(dict.fromkeys(names))


class ListrakSettings(_Section):
    client_id: str = Field(min_length=1)
    client_secret: SecretStr = Field(min_length=1)
    base_url: HttpUrl = "https://api.listrak.com/email/v1"
    auth_url: HttpUrl = "https://auth.listrak.com/OAuth2/Token"
    # Bounded above too: a timeout or pause beyond what sockets and sleep() take fails late.
    timeout: float = Field(default=30.0, gt=0, le=3600)
    page_size: int = Field(default=5000, ge=1, le=5000)
    max_attempts: int = Field(default=6, ge=1)
    # Listrak's other APIs publish 20 requests per 10 s; the Email API publishes none.
    requests_per_second: float = Field(default=2.0, ge=0.001)
    # Bounds on one scan, so a list that keeps handing out fresh cursors fails instead of
    # running (and holding its lease) forever: 100,000 pages is 500 M contacts at 5,000.
    max_pages: int = Field(default=100_000, ge=1)
    max_empty_pages: int = Field(default=100, ge=1)
    # Listrak's dates carry no zone; the activity events read them in this one.
    timezone: Annotated[str, AfterValidator(_check_zone)] = DEFAULT_ZONE


class SegmentSettings(_Section):
    write_key: SecretStr = Field(min_length=1)
    host: HttpUrl = "https://api.segment.io"
    timeout: float = Field(default=15.0, gt=0, le=3600)
    max_retries: int = Field(default=3, ge=0)
    # Bounds the library's own retry loop so an outage fails a delivery in about a
    # minute; the worker's per-row retry across runs does the rest.
    max_backoff_seconds: float = Field(default=60.0, ge=0, le=86400)
    # Rows handed to the client per flush: bounds the worker's memory, not throughput.
    chunk_size: int = Field(default=5000, ge=1)
    # Segment's HTTP API asks callers to stay under 50 requests a second.
    requests_per_second: float = Field(default=50.0, ge=0.001)


class DatabaseSettings(_Section):
    url: str = "sqlite:///listrak_source.db"


class ScheduleSettings(_Section):
    interval: Duration | None = None
    cron: str | None = None
    # The daemon's watchdog pings stop once a run has gone this long without progress.
    stall_timeout: Duration = timedelta(minutes=10)

    @model_validator(mode="after")
    def _one_of(self) -> ScheduleSettings:
        if self.interval is not None and self.cron is not None:
            raise ValueError("set interval or cron, not both")
        return self


class DeliverySettings(_Section):
    max_attempts: int = Field(default=8, ge=1)
    backoff_base: Duration = timedelta(minutes=1)
    backoff_max: Duration = timedelta(hours=6)
    max_removal_ratio: float = Field(default=0.5, gt=0, le=1)
    # Subscribers a full scan missed are confirmed one request each up to this many;
    # more wait for an Unsubscribed scan or a second full scan that misses them too.
    confirm_unseen_max: int = Field(default=50, ge=0, le=5000)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "lease_ttl" in data:
            raise PydanticCustomError(
                "renamed_key",
                "lease_ttl is gone: a list's lock is freed when its holder dies; the "
                "watchdog's bound is now schedule.stall_timeout",
            )
        return data


class MetricsSettings(_Section):
    port: int | None = Field(default=None, ge=0, le=65535)
    host: str = "127.0.0.1"


# Traits Segment's identify spec reserves, and the ids every message carries: a list's
# trait set to true and then null would overwrite or delete them. Compared without case,
# "_" or "-", as destinations match them loosely.
_RESERVED_TRAITS = frozenset(
    {
        "address", "age", "anonymousid", "avatar", "birthday", "company", "createdat",
        "description", "email", "firstname", "gender", "id", "lastname", "name", "phone",
        "title", "userid", "username", "website",
    }
)  # fmt: skip
_TRAIT = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")


def check_trait(template: str, list_id: int) -> str:
    """A list's trait template must give a name of its own once its id is filled in."""
    name = template.replace("{list_id}", str(list_id))
    if not name.strip():
        raise ValueError("is empty")
    if not _TRAIT.match(name):
        raise ValueError(
            "is not a trait name: letters, digits, _ and -, starting with a letter, "
            "at most 100 characters, with {list_id} where the list id goes"
        )
    if re.sub(r"[_-]", "", name).lower() in _RESERVED_TRAITS:
        raise ValueError(f"{template!r} is a trait Segment reserves; choose another name")
    return template


class PushSettings(_Section):
    """How audience values go to Listrak's bulk profile-field route, and are checked."""

    interval: Duration = timedelta(seconds=30)
    max_contacts_per_request: int = Field(default=1000, ge=1)
    # A push that would uncheck more than this share of a field's checked contacts (and
    # more than min_flip_count of them) waits for `push --allow-mass-flip`.
    max_flip_ratio: float = Field(default=0.5, gt=0, le=1)
    min_flip_count: int = Field(default=100, ge=0)
    # Unchecks are judged over this window, so a mass exit trickling in is held too.
    flip_window: Duration = timedelta(days=1)
    # Listrak applies an import later; a read-back sooner than this after a push proves nothing.
    apply_grace: Duration = timedelta(minutes=10)
    # Read-backs in a row that find Listrak not showing a value it accepted before the value
    # is dead: re-sent at every full scan forever, it would hide a field Listrak ignores.
    max_mismatches: int = Field(default=3, ge=1)


class ActivitySettings(_Section):
    """Email activity as track events, for the lists with `activity = true`."""

    # Listrak attributes a conversion to a click up to 30 days later: 35 days with slack.
    window: Duration = timedelta(days=35)
    events: Annotated[list[str], AfterValidator(_check_events)] = Field(
        default_factory=lambda: list(DEFAULT_EVENTS)
    )
    # Listrak requests one list's activity pass may make: the pace is shared with the
    # subscriber scan, and a pass that cannot re-read every open message reads the newest.
    max_requests: int = Field(default=1000, ge=1)
    # Clicker reads filtered by date overlap the previous read by this much (Listrak
    # reports activity with some delay).
    overlap: Duration = timedelta(hours=6)


class ListSettings(_Section):
    id: int = Field(gt=0, le=MAX_LIST_ID)
    user_id_field: int | None = Field(default=None, gt=0, le=MAX_ID)
    trait: str = "Listrak_list_{list_id}"
    interval: Duration | None = None
    cron: str | None = None
    # Between full scans, poll only what changed since the high-water mark; None keeps
    # every run a full scan.
    full_scan_every: Duration | None = None
    incremental_overlap: Duration = timedelta(hours=2)
    # Email activity of the list's messages as track events (see [activity]).
    activity: bool = False

    @field_validator("trait")
    @classmethod
    def _trait_name(cls, template: str, info: ValidationInfo) -> str:
        # Judged with the list's own id: a long id makes a long name. Without a valid id
        # (reported on its own) a one-digit id stands in.
        return check_trait(template, info.data.get("id", 1))

    @model_validator(mode="after")
    def _one_schedule(self) -> ListSettings:
        if self.interval is not None and self.cron is not None:
            raise ValueError("set interval or cron, not both")
        return self

    @property
    def trait_name(self) -> str:
        """The trait this list sets, with {list_id} filled in."""
        return self.trait.replace("{list_id}", str(self.id))


class Settings(BaseSettings):
    """Everything the worker needs; see config.example.toml for each key."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )
    toml_path: ClassVar[Path | None] = None
    init_only: ClassVar[bool] = False

    listrak: ListrakSettings
    segment: SegmentSettings
    database: DatabaseSettings = DatabaseSettings()
    schedule: ScheduleSettings = ScheduleSettings(interval=timedelta(minutes=15))
    delivery: DeliverySettings = DeliverySettings()
    metrics: MetricsSettings = MetricsSettings()
    lists: list[ListSettings] = Field(min_length=1)
    receiver: ReceiverSettings | None = None
    audiences: list[AudienceSettings] = Field(default_factory=list)
    push: PushSettings = PushSettings()
    activity: ActivitySettings = ActivitySettings()

    @model_validator(mode="after")
    def _unique_lists(self) -> Settings:
        ids = [item.id for item in self.lists]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"list {dupes[0]} is configured twice")
        return self

    @field_validator("lists")
    @classmethod
    def _unique_traits(cls, lists: list[ListSettings]) -> list[ListSettings]:
        # Leaving one list would remove the trait of a contact still on the other. Judged
        # on the lists alone, so a problem is blamed on what set them: the file or
        # LISTRAK_SOURCE_LISTS.
        owner: dict[str, int] = {}
        for item in lists:
            first = owner.setdefault(item.trait_name.lower(), item.id)
            if first != item.id:
                raise ValueError(
                    f"lists {first} and {item.id} set the same trait {item.trait_name}; "
                    "give each list a trait of its own"
                )
        return lists

    @model_validator(mode="after")
    def _sound_audiences(self) -> Settings:
        problems = mapping_problems([a.to_mapping() for a in self.audiences])
        problems += [p for cfg in self.lists for p in _field_problems(cfg, self.audiences)]
        known = {cfg.id for cfg in self.lists}
        problems += [
            f"audience {a.key!r} writes list {a.list_id}, which is not a configured [[lists]] "
            "entry (its subscribers must be synced)"
            for a in self.audiences
            if a.list_id not in known
        ]
        if self.receiver is not None and not self.audiences:
            # Every event would be acknowledged as unmapped, and Segment would drop it.
            problems.append(
                "[receiver] is set but no [[audiences]] are configured: every event would be "
                "acknowledged and dropped; add an [[audiences]] row per audience"
            )
        if problems:
            raise ValueError(problems[0])
        return self

    def audience_fields(self, list_id: int) -> list[int]:
        """The profile fields audiences write on this list, in config order."""
        return [a.field_id for a in self.audiences if a.list_id == list_id]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment beats the file, so secrets need never be written into it."""
        if cls.init_only:
            return (init_settings,)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_path))
        return tuple(sources)

    @classmethod
    def from_values(cls, **values: Any) -> Settings:
        """Settings from these values only: the demo and tests must not pick up the environment."""
        klass = type("PlainSettings", (cls,), {"init_only": True})
        try:
            settings: Settings = klass(**values)
            return settings
        except ValidationError as exc:
            raise ConfigError(describe_validation(exc, root=Settings, environ={})) from None

    def list_by_id(self, list_id: int) -> ListSettings:
        """The configured list, or a ConfigError naming the unknown id."""
        for item in self.lists:
            if item.id == list_id:
                return item
        known = ", ".join(str(item.id) for item in self.lists)
        raise ConfigError(f"list {list_id} is not in the configuration (configured: {known})")

    def secrets(self) -> list[str]:
        """Values that must never be printed or logged."""
        receiver = self.receiver.secret_values() if self.receiver is not None else []
        return [
            self.listrak.client_secret.get_secret_value(),
            self.segment.write_key.get_secret_value(),
            *url_passwords(self.database.url),
            *receiver,
        ]


def url_passwords(url: str) -> list[str]:
    """The password in a URL's user:password@ part or its query, even in a URL that does
    not parse."""
    found = [text for text in _URL_PASSWORD.findall(url) + _QUERY_PASSWORD.findall(url) if text]
    return found + [unquote(text) for text in found if unquote(text) != text]


def _field_problems(cfg: ListSettings, audiences: list[AudienceSettings]) -> list[str]:
    """An audience may not write the userId field, and one scan reads at most 30 fields."""
    fields = {a.field_id for a in audiences if a.list_id == cfg.id}
    problems = []
    if cfg.user_id_field in fields:
        problems.append(
            f"list {cfg.id}: field {cfg.user_id_field} is both user_id_field and an audience's"
        )
    read = fields | ({cfg.user_id_field} if cfg.user_id_field is not None else set())
    if len(read) > MAX_SCAN_FIELDS:
        problems.append(
            f"list {cfg.id}: {len(read)} profile fields (audiences and user_id_field), more "
            f"than the {MAX_SCAN_FIELDS} one scan can read"
        )
    return problems


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """--config, else LISTRAK_SOURCE_CONFIG, else ./config.toml."""
    return Path(path or os.environ.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_CONFIG)


def load_settings(path: str | os.PathLike[str] | None = None, *, required: bool = True) -> Settings:
    """Load and validate the settings, turning every problem into one ConfigError line.

    A relative SQLite path is taken from the config file's folder, so a command run from
    another folder opens the same database.
    """
    toml_path = resolve_path(path)
    explicit = path is not None or f"{ENV_PREFIX}CONFIG" in os.environ
    if not toml_path.exists() and (explicit and required):
        raise ConfigError(f"{_shown(toml_path)}: config file not found; {_how_to_make_one()}")
    _check_toml(toml_path)
    found = toml_path if toml_path.exists() else None
    klass = type("BoundSettings", (Settings,), {"toml_path": found})
    _warn_unknown_environment()
    try:
        loaded: Settings = klass()
    except ValidationError as exc:
        raise ConfigError(_invalid(exc, toml_path, found is not None)) from None
    except SettingsError as exc:
        raise ConfigError(_describe_settings_error(exc)) from None
    folder = toml_path.resolve().parent if found is not None else Path.cwd()
    return _with_database_in(loaded, folder)


def _invalid(exc: ValidationError, toml_path: Path, exists: bool) -> str:
    if not exists:
        # Without a file, "missing" is all there is to say, unless the environment tried.
        head = f"{_shown(toml_path)} does not exist; {_how_to_make_one()}"
        if not any(name.upper().startswith(ENV_PREFIX) for name in os.environ):
            return head
        return f"{head}; from the environment alone: {describe_validation(exc, root=Settings)}"
    return describe_validation(exc, root=Settings, origin=str(toml_path))


def _shown(path: Path) -> str:
    return str(path) if path.is_absolute() or str(path).startswith(".") else f"./{path}"


def _how_to_make_one() -> str:
    return (
        f"make one from {EXAMPLE} (cp {EXAMPLE} config.toml, then fill in the Listrak "
        "and Segment keys and your lists), or pass --config PATH"
    )


def sqlite_file_url(url: str, folder: Path) -> str:
    """The URL with a relative SQLite path made absolute under `folder`."""
    match = _SQLITE_FILE.match(url)
    if match is None or match.group(2) == ":memory:" or match.group(2).startswith("file:"):
        return url
    path = Path(match.group(2)).expanduser()
    absolute = path if path.is_absolute() else (folder / path).resolve()
    return f"{match.group(1)}{absolute}{match.group(3) or ''}"


def _with_database_in(settings: Settings, folder: Path) -> Settings:
    url = sqlite_file_url(settings.database.url, folder)
    if url == settings.database.url:
        return settings
    database = settings.database.model_copy(update={"url": url})
    return settings.model_copy(update={"database": database})


def _describe_settings_error(exc: SettingsError) -> str:
    """A section or the lists set whole from the environment must be JSON; name the variable."""
    found = re.search(r'field "(\w+)"', str(exc))
    name = ENV_PREFIX + (found.group(1).upper() if found else "*")
    return (
        f"{name}: not valid JSON (a section or the lists set whole from the environment "
        f"must be JSON; or set one key, as in {ENV_PREFIX}SCHEDULE__INTERVAL=15m)"
    )


def _warn_unknown_environment() -> None:
    """A misspelt section (LISTRAK_SOURCE_LISTRACK__...) would be ignored without a word."""
    for name in sorted(os.environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        section = name[len(ENV_PREFIX) :].partition("__")[0].lower()
        if section not in Settings.model_fields and section not in _NOT_SETTINGS:
            near = closest_section(section, Settings.model_fields)
            hint = f" (did you mean {ENV_PREFIX}{near.upper()}?)" if near else ""
            log.warning("environment variable %s names no setting; it is ignored%s", name, hint)


def _check_toml(path: Path) -> None:
    if not path.exists():
        return
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
