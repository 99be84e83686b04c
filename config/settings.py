"""One typed settings object, read and validated once at start-up.

Nothing else in aduan reads `os.environ`. Every name below is part of the interface
contract in DESIGN.md. An optional TOML file (`ADUAN_CONFIG`) may set the same names;
the environment wins over the file.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from config.limits import DEFAULT_LIMITS, Limit, parse_limits


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the key."""


def _bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"Setting '{key}' must be true or false, not {value!r}.")


def _int(key: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"Setting '{key}' must be a whole number, not {value!r}.") from None
    if not low <= number <= high:
        raise SettingsError(f"Setting '{key}' must be between {low} and {high}, not {number}.")
    return number


def _float(key: str, value: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"Setting '{key}' must be a number, not {value!r}.") from None
    if not low <= number <= high:
        raise SettingsError(f"Setting '{key}' must be between {low} and {high}, not {number}.")
    return number


# Seconds before each retry of a reply a provider could not take: about ten minutes in all.
DEFAULT_SEND_RETRY_INTERVALS = (1, 2, 5, 10, 30, 60, 120, 300)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    http_host: str
    http_port: int
    smtp_host: str
    smtp_port: int
    public_url: str
    redis_url: str | None
    database_url: str | None
    ticket_prefix: str
    default_region: str
    secret_key: str
    encryption_keys: tuple[str, ...]
    twilio_account_sid: str | None
    twilio_auth_token: str | None
    twilio_sms_from: str | None
    twilio_whatsapp_from: str | None
    twilio_api_url: str
    meta_app_secret: str | None
    meta_verify_token: str | None
    meta_access_token: str | None
    meta_phone_number_id: str | None
    meta_graph_url: str
    email_domains: tuple[str, ...]
    email_from: str
    smtp_relay: str | None
    insecure_webhooks: bool
    ack_wait_seconds: float
    queue_name: str
    log_level: str
    topics_file: Path | None
    replies_file: Path | None
    # Rate limits
    rate_limits: dict[str, Limit]
    # WhatsApp templates
    meta_template_name: str | None
    meta_template_language: str
    # SMTP intake
    smtp_tls_cert: Path | None
    smtp_tls_key: Path | None
    email_max_bytes: int
    # Grouping
    burst_seconds: int
    incident_days: float
    incident_distance_m: float
    # Console
    session_idle_minutes: int
    sla_verify_days: int
    timezone: str
    # Outbound sends (defaults, so that code building Settings by hand keeps working)
    send_retry_intervals: tuple[int, ...] = DEFAULT_SEND_RETRY_INTERVALS
    send_timeout_seconds: float | None = None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'aduan.sqlite3'}"

    def describe(self) -> dict[str, Any]:
        """Settings as they can be shown: secrets and credentials masked."""
        hidden = ("secret", "token", "key", "password", "auth")
        shown: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if any(word in f.name for word in hidden) and value:
                value = "********"
            shown[f.name] = str(value) if isinstance(value, Path) else value
        return shown


def _secret_file(data_dir: Path, name: str, make: bool) -> str | None:
    """Keys generated into the data directory on first run, as DESIGN.md promises."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    if not make:
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    if name == "encryption.key":
        value = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    else:
        value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def _validate_fernet_key(key: str, name: str) -> None:
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 32:
        raise SettingsError(
            f"Setting '{name}' must be 32 url-safe base64-encoded bytes (a Fernet key); "
            "separate several keys with commas, newest first."
        )


def load_settings(
    environ: Mapping[str, str] | None = None, *, create_secrets: bool = True
) -> Settings:
    env: dict[str, str] = {}
    source = dict(os.environ if environ is None else environ)
    config_file = source.get("ADUAN_CONFIG")
    if config_file:
        path = Path(config_file)
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise SettingsError(
                f"Setting 'ADUAN_CONFIG' names {path}, which does not exist."
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(
                f"Setting 'ADUAN_CONFIG': {path} is not valid TOML: {exc}"
            ) from None
        for key, value in data.items():
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            env[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update(source)

    def get(key: str, default: str | None = None) -> str | None:
        value = env.get(key)
        return default if value is None or value == "" else value

    data_dir = Path(get("ADUAN_DATA_DIR", "./var") or "./var").resolve()
    http_host = get("ADUAN_HTTP_HOST", "127.0.0.1") or "127.0.0.1"
    http_port = _int("ADUAN_HTTP_PORT", get("ADUAN_HTTP_PORT", "8080") or "", 0, 65535)
    smtp_host = get("ADUAN_SMTP_HOST", "127.0.0.1") or "127.0.0.1"
    smtp_port = _int("ADUAN_SMTP_PORT", get("ADUAN_SMTP_PORT", "2525") or "", 0, 65535)
    public_url = (get("ADUAN_PUBLIC_URL") or f"http://{http_host}:{http_port}").rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise SettingsError(
            f"Setting 'ADUAN_PUBLIC_URL' must start with http:// or https://, not {public_url!r}."
        )

    prefix = get("ADUAN_TICKET_PREFIX", "BGR") or "BGR"
    if not (prefix.isascii() and prefix.isalpha() and 2 <= len(prefix) <= 5):
        raise SettingsError(
            f"Setting 'ADUAN_TICKET_PREFIX' must be 2 to 5 letters, not {prefix!r}."
        )
    region = (get("ADUAN_DEFAULT_REGION", "ID") or "ID").upper()
    if not (len(region) == 2 and region.isalpha()):
        raise SettingsError(
            f"Setting 'ADUAN_DEFAULT_REGION' must be a two-letter country code, not {region!r}."
        )

    secret_key = (
        get("ADUAN_SECRET_KEY") or _secret_file(data_dir, "secret.key", create_secrets) or ""
    )
    if not secret_key:
        raise SettingsError("Setting 'ADUAN_SECRET_KEY' is missing and none was generated.")
    if len(secret_key) < 16:
        raise SettingsError("Setting 'ADUAN_SECRET_KEY' must be at least 16 characters.")
    enc = (
        get("ADUAN_ENCRYPTION_KEY")
        or _secret_file(data_dir, "encryption.key", create_secrets)
        or ""
    )
    keys = tuple(k.strip() for k in enc.split(",") if k.strip())
    if not keys:
        raise SettingsError("Setting 'ADUAN_ENCRYPTION_KEY' is missing and none was generated.")
    for key in keys:
        _validate_fernet_key(key, "ADUAN_ENCRYPTION_KEY")

    domains = tuple(
        d.strip().lower()
        for d in (get("ADUAN_EMAIL_DOMAINS", "localhost") or "").split(",")
        if d.strip()
    )
    if not domains:
        raise SettingsError("Setting 'ADUAN_EMAIL_DOMAINS' must name at least one domain.")
    relay = get("ADUAN_SMTP_RELAY")
    if relay is not None:
        host, _, port = relay.rpartition(":")
        if not host or not port.isdigit():
            raise SettingsError(f"Setting 'ADUAN_SMTP_RELAY' must be host:port, not {relay!r}.")
    level = (get("ADUAN_LOG_LEVEL", "INFO") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(
            f"Setting 'ADUAN_LOG_LEVEL' must be DEBUG, INFO, WARNING or ERROR, not {level!r}."
        )
    topics_file = get("ADUAN_TOPICS_FILE")
    replies_file = get("ADUAN_REPLIES_FILE")
    # SMTP intake
    tls_cert, tls_key = get("ADUAN_SMTP_TLS_CERT"), get("ADUAN_SMTP_TLS_KEY")
    if (tls_cert is None) != (tls_key is None):
        raise SettingsError(
            "Settings 'ADUAN_SMTP_TLS_CERT' and 'ADUAN_SMTP_TLS_KEY' go together: "
            "set both or neither."
        )
    for tls_name, tls_path in (("ADUAN_SMTP_TLS_CERT", tls_cert), ("ADUAN_SMTP_TLS_KEY", tls_key)):
        if tls_path is not None and not Path(tls_path).is_file():
            raise SettingsError(f"Setting '{tls_name}' names {tls_path}, which is not a file.")
    email_max_bytes = _int(
        "ADUAN_EMAIL_MAX_BYTES",
        get("ADUAN_EMAIL_MAX_BYTES", str(16 * 1024 * 1024)) or "",
        64 * 1024,
        100 * 1024 * 1024,
    )
    return Settings(
        data_dir=data_dir,
        http_host=http_host,
        http_port=http_port,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        public_url=public_url,
        redis_url=get("REDIS_URL"),
        database_url=get("DATABASE_URL"),
        ticket_prefix=prefix.upper(),
        default_region=region,
        secret_key=secret_key,
        encryption_keys=keys,
        twilio_account_sid=get("ADUAN_TWILIO_ACCOUNT_SID"),
        twilio_auth_token=get("ADUAN_TWILIO_AUTH_TOKEN"),
        twilio_sms_from=get("ADUAN_TWILIO_SMS_FROM"),
        twilio_whatsapp_from=get("ADUAN_TWILIO_WHATSAPP_FROM"),
        twilio_api_url=(get("ADUAN_TWILIO_API_URL", "https://api.twilio.com") or "").rstrip("/"),
        meta_app_secret=get("ADUAN_META_APP_SECRET"),
        meta_verify_token=get("ADUAN_META_VERIFY_TOKEN"),
        meta_access_token=get("ADUAN_META_ACCESS_TOKEN"),
        meta_phone_number_id=get("ADUAN_META_PHONE_NUMBER_ID"),
        meta_graph_url=(get("ADUAN_META_GRAPH_URL", "https://graph.facebook.com") or "").rstrip(
            "/"
        ),
        email_domains=domains,
        email_from=get("ADUAN_EMAIL_FROM") or f"aduan@{domains[0]}",
        smtp_relay=relay,
        insecure_webhooks=_bool(
            "ADUAN_INSECURE_WEBHOOKS", get("ADUAN_INSECURE_WEBHOOKS", "false") or ""
        ),
        ack_wait_seconds=_float("ADUAN_ACK_WAIT", get("ADUAN_ACK_WAIT", "10") or "", 0.1, 120),
        queue_name=get("ADUAN_QUEUE", "aduan") or "aduan",
        log_level=level,
        topics_file=Path(topics_file) if topics_file else None,
        replies_file=Path(replies_file) if replies_file else None,
        # Rate limits
        rate_limits=parse_limits(get("ADUAN_RATE_LIMITS", DEFAULT_LIMITS) or ""),
        # WhatsApp templates
        meta_template_name=_template_name(get("ADUAN_META_TEMPLATE_NAME")),
        meta_template_language=_template_language(
            get("ADUAN_META_TEMPLATE_LANGUAGE", "id") or "id"
        ),
        # SMTP intake
        smtp_tls_cert=Path(tls_cert) if tls_cert else None,
        smtp_tls_key=Path(tls_key) if tls_key else None,
        email_max_bytes=email_max_bytes,
        # Grouping
        burst_seconds=_int(
            "ADUAN_BURST_SECONDS", get("ADUAN_BURST_SECONDS", "180") or "", 0, 86400
        ),
        incident_days=_float("ADUAN_INCIDENT_DAYS", get("ADUAN_INCIDENT_DAYS", "7") or "", 0, 365),
        incident_distance_m=_float(
            "ADUAN_INCIDENT_DISTANCE_M", get("ADUAN_INCIDENT_DISTANCE_M", "250") or "", 1, 50_000
        ),
        # Console
        session_idle_minutes=_int(
            "ADUAN_SESSION_IDLE_MINUTES", get("ADUAN_SESSION_IDLE_MINUTES", "30") or "", 1, 24 * 60
        ),
        sla_verify_days=_int(
            "ADUAN_SLA_VERIFY_DAYS", get("ADUAN_SLA_VERIFY_DAYS", "3") or "", 1, 60
        ),
        timezone=_timezone(get("ADUAN_TIMEZONE", "Asia/Jakarta") or "Asia/Jakarta"),
        # Outbound sends
        send_retry_intervals=_retry_intervals(get("ADUAN_SEND_RETRY_INTERVALS")),
        send_timeout_seconds=(
            None
            if get("ADUAN_SEND_TIMEOUT") is None
            else _float("ADUAN_SEND_TIMEOUT", get("ADUAN_SEND_TIMEOUT") or "", 0.1, 300)
        ),
    )


# WhatsApp templates
def _template_name(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[a-z0-9_]{1,512}", value):
        raise SettingsError(
            "Setting 'ADUAN_META_TEMPLATE_NAME' must be a WhatsApp template name "
            f"(lower-case letters, digits and '_'), not {value!r}."
        )
    return value


def _template_language(value: str) -> str:
    if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", value):
        raise SettingsError(
            "Setting 'ADUAN_META_TEMPLATE_LANGUAGE' must be a language code such as "
            f"'id' or 'en_US', not {value!r}."
        )
    return value


# Console
def _timezone(value: str) -> str:
    """Operators read times in the city's own zone; SLA working days are counted in it."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"Setting 'ADUAN_TIMEZONE' must be a time zone name such as 'Asia/Jakarta', "
            f"not {value!r}."
        ) from None
    return value


# Outbound sends
def _retry_intervals(value: str | None) -> tuple[int, ...]:
    """Seconds to wait before each retry of a reply the provider could not take; as many
    retries as there are values."""
    if value is None:
        return DEFAULT_SEND_RETRY_INTERVALS
    try:
        intervals = tuple(int(part) for part in value.split(","))
    except ValueError:
        intervals = ()
    if not 1 <= len(intervals) <= 25 or not all(0 <= i <= 86400 for i in intervals):
        raise SettingsError(
            "Setting 'ADUAN_SEND_RETRY_INTERVALS' must be 1 to 25 comma-separated whole "
            f"numbers of seconds (0 to 86400), such as '1,2,5,10', not {value!r}."
        )
    return intervals
