"""Configuration: the TOML file, its environment overrides, and their validation.

This module owns the shape of `config.toml` and the table of `CHATSVC_*` variables that may
override it. It reads files and the environment it is given, and nothing else: it never starts
anything. Every problem becomes a `ConfigError` whose message names the file (or the variable)
and the key, so an operator can fix it without reading code.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from triage.models import Urgency
from triage.redflags import DEFAULT_RED_FLAGS, RedFlagMatcher

# The file `chatsvc serve` reads when no --config and no CHATSVC_CONFIG is given.
DEFAULT_CONFIG_NAME = "config.toml"
CONFIG_PATH_VARIABLE = "CHATSVC_CONFIG"

# An origin as browsers send it: scheme, host and an optional port, nothing after.
ORIGIN_PATTERN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")

# A shared secret shorter than this is guessable by brute force offline (HS256 tokens).
MIN_TOKEN_SECRET_CHARS = 32

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
DepartmentId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


def department_red_flags(department: Department) -> dict[str, Urgency]:
    """The department's phrases: its preset, then its own (which win on a clash).

    Raises ValueError when the phrases cannot be matched (empty, or two that mean the same).
    """
    phrases: dict[str, Urgency] = {}
    if department.red_flags_preset != "none":
        phrases.update(DEFAULT_RED_FLAGS[department.red_flags_preset])
    phrases.update({phrase: Urgency.parse(level) for phrase, level in department.red_flags.items()})
    RedFlagMatcher(phrases)  # validates: raises ValueError on unusable phrases
    return phrases


class ConfigError(Exception):
    """The configuration cannot be used; the message names the source and the key."""


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080  # 0 = any free port; the ready log line says which
    shutdown_timeout_s: PositiveSeconds = 10.0
    # Browser pages on these origins (scheme://host[:port]) may open /ws, besides the
    # gateway's own origin. Clients that send no Origin (not browsers) are not affected.
    allowed_origins: tuple[str, ...] = ()
    # Behind a load balancer: the header it writes the client's address into (rightmost
    # value wins). Empty: the TCP peer's address. Never trusted unless named here.
    trusted_proxy_header: str = ""
    # With `serve --workers N`: worker i also serves GET /metrics alone on this port + i, so
    # each worker's own series can be scraped (the shared port reaches one worker at random).
    # 0: off.
    worker_metrics_port: Port = 0


class RedisConfig(_Section):
    url: str = ""  # empty = start the embedded redis-server in data_dir
    server_binary: str = ""  # embedded only: path to redis-server; empty = discover
    connect_timeout_s: PositiveSeconds = 5.0
    retry_max_backoff_s: PositiveSeconds = 10.0
    hot_retention_days: PositiveInt = 90  # ended consultations and tickets stay this long
    # What an ack (a stored message, a match) promises: "write" (applied in Redis), "fsync"
    # (and on disk: needs appendfsync always) or "replica" (and confirmed by WAIT).
    ack_after: Literal["write", "fsync", "replica"] = "fsync"
    # "replica": how many replicas must confirm, and how long to wait for them. Below the
    # 5 s command timeout, so a missing replica shows as a refusal, not a broken connection.
    ack_replicas: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    ack_timeout_ms: Annotated[int, msgspec.Meta(ge=10, le=4000)] = 1000


class AuthConfig(_Section):
    token_secret: str = ""  # empty = generated on first start, kept in data_dir
    # A rollover: tokens signed with these are still accepted (new ones are signed with
    # token_secret) until they expire; then remove them.
    previous_token_secrets: tuple[str, ...] = ()
    token_ttl_s: PositiveInt = 3600
    # POST /api/session: guest patient tokens one client address may get per minute.
    guest_sessions_per_minute: PositiveInt = 10
    # A guest's tokens are renewed (POST /api/session/renew) until this long after their
    # session began; then they start a new one.
    guest_session_max_s: PositiveInt = 86400


class LimitsConfig(_Section):
    max_frame_bytes: PositiveInt = 65536
    max_message_chars: PositiveInt = 4000
    max_connections: PositiveInt = 10000
    # Connections one user may hold at once across all gateways (tabs, devices).
    max_connections_per_user: PositiveInt = 10
    doctor_capacity: PositiveInt = 4
    # Per connection: a sustained rate of frames per second and the burst allowed above it.
    frames_per_second: PositiveSeconds = 20.0
    frame_burst: PositiveInt = 40
    # Over-limit or undecodable frames within a minute before the socket is closed (4008).
    max_violations_per_minute: PositiveInt = 30


class TriageConfig(_Section):
    priority_head_start_s: PositiveInt = 600
    urgent_head_start_s: PositiveInt = 1800
    accept_timeout_s: PositiveInt = 60
    presence_ttl_s: PositiveInt = 30
    patient_grace_s: PositiveInt = 60
    # The engine keeps an hour of match history, the longest window an ETA may use.
    eta_window_s: Annotated[int, msgspec.Meta(gt=0, le=3600)] = 900
    mean_consult_s: PositiveInt = 600


DEFAULT_NOTICE = {
    "en": "This service is not for emergencies. If you are in danger or seriously unwell,"
    " call {number} now.",
    "zh": "本服务不处理急症。如有生命危险或病情严重，请立即拨打 {number}。",
}
DEFAULT_GUIDANCE = {
    "en": "What you describe may need emergency care. Call {number} now or go to the nearest"
    " emergency department. A doctor will see you here as soon as possible.",
    "zh": "您描述的情况可能需要紧急救治。请立即拨打 {number} 或前往最近的急诊科。"
    "医生会尽快在此接诊。",
}


class DeskConfig(_Section):
    # The local emergency number patients are told to call (120 in mainland China).
    emergency_number: Annotated[str, msgspec.Meta(min_length=1, max_length=20)] = "120"
    # Language → the not-for-emergencies notice shown before joining; {number} is filled in.
    notice: dict[str, str] = msgspec.field(default_factory=lambda: dict(DEFAULT_NOTICE))


class MetricsConfig(_Section):
    # Wait percentiles, abandonment, ETA accuracy and safety records count over this window.
    window_s: Annotated[int, msgspec.Meta(ge=60, le=86400)] = 900
    # A red-flagged patient still waiting after this long is a safety alert for supervisors.
    red_flag_alert_s: PositiveInt = 120


class WebConfig(_Section):
    # Sites (scheme://host[:port]) whose pages may embed the patient widget: its panel is an
    # iframe from the gateway's own origin, framed only by these (CSP frame-ancestors) and by
    # the gateway's own pages (/demo). Empty: only the gateway's own pages.
    embed_origins: tuple[str, ...] = ()


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


RedFlagLevel = Literal["priority", "urgent", "emergency"]


class Department(_Section):
    id: DepartmentId
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    routing: Literal["pull", "push"] = "pull"
    max_wait_s: PositiveInt = 1800
    # A shipped list of red-flag phrases (English and Simplified Chinese), or "none".
    red_flags_preset: Literal["general", "paediatrics", "psych", "none"] = "general"
    # Extra phrases for this department: phrase = level it raises the ticket to.
    red_flags: dict[str, RedFlagLevel] = msgspec.field(default_factory=dict)
    # Language → what a patient whose intake raised an emergency flag is told at once;
    # {number} is the desk's emergency number.
    guidance: dict[str, str] = msgspec.field(default_factory=lambda: dict(DEFAULT_GUIDANCE))


DEFAULT_DEPARTMENTS: tuple[Department, ...] = (
    Department(id="general", name="General medicine", routing="pull", max_wait_s=1800),
    Department(
        id="paediatrics",
        name="Paediatrics",
        routing="pull",
        max_wait_s=1200,
        red_flags_preset="paediatrics",
    ),
    Department(
        id="psych",
        name="Psychological counselling",
        routing="push",
        max_wait_s=900,
        red_flags_preset="psych",
    ),
)


class Config(_Section):
    data_dir: str = ""  # empty = $XDG_DATA_HOME/chatsvc (or ~/.local/share/chatsvc)
    server: ServerConfig = ServerConfig()
    redis: RedisConfig = RedisConfig()
    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    triage: TriageConfig = TriageConfig()
    desk: DeskConfig = DeskConfig()
    metrics: MetricsConfig = MetricsConfig()
    web: WebConfig = WebConfig()
    log: LogConfig = LogConfig()
    departments: tuple[Department, ...] = DEFAULT_DEPARTMENTS


@dataclass(frozen=True)
class EnvOverride:
    variable: str
    section: str | None  # None = a top-level key
    key: str


# The one table of variables a container may set; departments live in the file only.
ENV_OVERRIDES: tuple[EnvOverride, ...] = (
    EnvOverride("CHATSVC_SERVER_HOST", "server", "host"),
    EnvOverride("CHATSVC_SERVER_PORT", "server", "port"),
    EnvOverride("CHATSVC_REDIS_URL", "redis", "url"),
    EnvOverride("CHATSVC_DATA_DIR", None, "data_dir"),
    EnvOverride("CHATSVC_AUTH_TOKEN_SECRET", "auth", "token_secret"),
    EnvOverride("CHATSVC_AUTH_TOKEN_TTL_S", "auth", "token_ttl_s"),
    EnvOverride("CHATSVC_LOG_LEVEL", "log", "level"),
    EnvOverride("CHATSVC_LOG_FORMAT", "log", "format"),
)


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and where it came from."""

    config: Config
    source: str  # the file path, or "built-in defaults"
    data_dir: Path  # absolute: relative paths in a file are taken from the file's folder


_PATH_IN_ERROR = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _describe(error: msgspec.ValidationError) -> tuple[str, str]:
    """Split msgspec's 'Expected int - at `$.server.port`' into ('server.port', 'expected int')."""
    text = str(error)
    match = _PATH_IN_ERROR.search(text)
    path = match["path"].lstrip(".") if match else ""
    reason = text[: match.start()] if match else text
    unknown = re.match(r"Object contains unknown field `(?P<field>[^`]+)`", reason)
    if unknown:
        path = f"{path}.{unknown['field']}" if path else unknown["field"]
        reason = "unknown key"
    return path or "(top level)", reason[:1].lower() + reason[1:]


def _check_rules(config: Config, source: str) -> None:
    """Rules that span several keys, which the types alone cannot say."""
    if not config.departments:
        raise ConfigError(f"{source}: departments: at least one [[departments]] is needed")
    seen: set[str] = set()
    for index, department in enumerate(config.departments):
        if department.id in seen:
            raise ConfigError(
                f"{source}: departments[{index}].id: duplicate department id {department.id!r}"
            )
        seen.add(department.id)
    for index, department in enumerate(config.departments):
        try:
            department_red_flags(department)
        except ValueError as error:
            raise ConfigError(f"{source}: departments[{index}].red_flags: {error}") from None
    secret = config.auth.token_secret
    if secret and len(secret) < MIN_TOKEN_SECRET_CHARS:
        raise ConfigError(
            f"{source}: auth.token_secret: must be at least {MIN_TOKEN_SECRET_CHARS} characters"
            " (or empty, to have one generated in the data directory)"
        )
    for index, previous in enumerate(config.auth.previous_token_secrets):
        if len(previous) < MIN_TOKEN_SECRET_CHARS:
            raise ConfigError(
                f"{source}: auth.previous_token_secrets[{index}]: must be at least"
                f" {MIN_TOKEN_SECRET_CHARS} characters"
            )
    origin_lists = (
        ("server.allowed_origins", config.server.allowed_origins),
        ("web.embed_origins", config.web.embed_origins),
    )
    for key, origins in origin_lists:
        for origin in origins:
            if not ORIGIN_PATTERN.fullmatch(origin):
                raise ConfigError(f"{source}: {key}: {origin!r} is not scheme://host[:port]")
    if "en" not in config.desk.notice:
        raise ConfigError(f'{source}: desk.notice: an English ("en") text is required')
    for index, department in enumerate(config.departments):
        if "en" not in department.guidance:
            raise ConfigError(
                f'{source}: departments[{index}].guidance: an English ("en") text is required'
            )
    url = config.redis.url
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"{source}: redis.url: must start with redis://, rediss:// or unix:// (got {url!r})"
        )


def parse_config(text: str, source: str) -> Config:
    """Validate TOML text into a `Config`; `source` names it in every error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as error:
        path, reason = _describe(error)
        raise ConfigError(f"{source}: {path}: {reason}") from None
    _check_rules(config, source)
    return config


def apply_environment(config: Config, environ: Mapping[str, str]) -> Config:
    """Apply the `ENV_OVERRIDES` variables that are set; errors name the variable."""
    for override in ENV_OVERRIDES:
        raw = environ.get(override.variable)
        if not raw:  # set but empty counts as unset, as most container tooling expects
            continue
        section = config if override.section is None else getattr(config, override.section)
        field_type = next(f.type for f in msgspec.structs.fields(section) if f.name == override.key)
        try:
            value = msgspec.convert(raw, field_type, strict=False)
        except msgspec.ValidationError as error:
            _, reason = _describe(error)
            raise ConfigError(f"environment variable {override.variable}: {reason}") from None
        section = msgspec.structs.replace(section, **{override.key: value})
        if override.section is not None:
            config = msgspec.structs.replace(config, **{override.section: section})
        else:
            config = section
        # The file passed these rules already, so a failure now is this variable's doing.
        _check_rules(config, f"environment variable {override.variable}")
    return config


def default_data_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "chatsvc"


def find_config_file(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """--config wins, then CHATSVC_CONFIG, then ./config.toml if present, else none."""
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_PATH_VARIABLE):
        return Path(environ[CONFIG_PATH_VARIABLE])
    candidate = Path.cwd() / DEFAULT_CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_config(
    explicit_path: str | None = None, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Find, read, validate and override the configuration chatsvc runs with."""
    environ = os.environ if environ is None else environ
    path = find_config_file(explicit_path, environ)
    if path is None:
        config, source, base = Config(), "built-in defaults", Path.cwd()
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the config file: {error.strerror}") from None
        config, source, base = parse_config(text, str(path)), str(path), path.resolve().parent
    config = apply_environment(config, environ)
    if environ.get("CHATSVC_DATA_DIR"):
        data_dir = Path(config.data_dir).expanduser().resolve()  # from the environment: cwd
    elif config.data_dir:
        data_dir = (base / Path(config.data_dir).expanduser()).resolve()
    else:
        data_dir = default_data_dir(environ)
    return LoadedConfig(config=config, source=source, data_dir=data_dir)
