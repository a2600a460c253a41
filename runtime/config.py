"""Configuration: database URLs (and, with the service, ``runtime.toml``)."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from runtime.codec import utf8
from runtime.cron import timezone
from runtime.errors import ConfigError, DefinitionError
from runtime.limits import MAX_CONCURRENCY, MAX_SHUTDOWN_GRACE, count, duration, period, shown


@dataclasses.dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed database URL.

    Attributes:
        scheme: ``sqlite`` or ``postgresql`` (``postgres://`` is read as ``postgresql``).
        path: the SQLite file (absolute) or ``:memory:``; for PostgreSQL, the connection
            URL handed to libpq (``postgresql://...``, without runtime's own options).
        options: query parameters runtime reads itself: ``synchronous=full`` (SQLite),
            ``schema=app_runtime`` (PostgreSQL).
    """

    scheme: str
    path: str
    options: dict[str, str]


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs).

    Both places a URL may carry one: the user part (``user:secret@host``, the secret
    may hold ``/`` or ``@``) and a ``password=`` query parameter.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, mark, query = rest.partition("?")
    user, at, host = rest.rpartition("@")
    if at and ":" in user:
        rest = f"{user.split(':', 1)[0]}:***@{host}"
    if query:
        params = [
            f"{name}=***" if name == "password" else part
            for part in query.split("&")
            for name in [part.partition("=")[0]]
        ]
        query = "&".join(params)
    return f"{scheme}://{rest}{mark}{query}"


def secrets_of(url: str) -> list[str]:
    """The password a URL carries, as written and decoded (to scrub from a driver's
    messages, which may repeat it); empty when it has none."""
    rest = url.partition("://")[2]
    rest, _, query = rest.partition("?")
    user, at, _ = rest.rpartition("@")
    found = [user.split(":", 1)[1]] if at and ":" in user else []
    found += [
        value for name, value in parse_qsl(query, keep_blank_values=True) if name == "password"
    ]
    found += [unquote(value) for value in found]
    return [value for value in dict.fromkeys(found) if value]


def parse_database_url(url: str, base_dir: Path | None = None) -> DatabaseUrl:
    """Parse ``sqlite:///relative.db`` (relative to ``base_dir``), ``sqlite:////abs.db``
    or ``postgresql://user:password@host:port/database?schema=runtime``."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"database URL {url!r} is not a URL; use sqlite:///relative/path.db, "
            "sqlite:////absolute/path.db or postgresql://user@host/db"
        )
    scheme, rest = url.split("://", 1)
    rest, _, query = rest.partition("?")
    if scheme == "sqlite":
        options = _sqlite_options(url, query)
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(
                f"database URL {url!r}: a SQLite URL is sqlite:///relative.db or "
                "sqlite:////absolute.db"
            )
        path = rest[1:]
        if path == ":memory:":
            return DatabaseUrl("sqlite", path, options)
        file = Path(path)
        if not file.is_absolute():
            file = (base_dir or Path.cwd()) / file
        return DatabaseUrl("sqlite", str(file), options)
    if scheme in ("postgresql", "postgres"):
        return _postgres_url(url, rest, query)
    raise ConfigError(
        f"database URL {redact(url)!r}: unknown scheme {scheme!r}; use sqlite or postgresql"
    )


SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""A schema name runtime accepts: lower case, so it never needs quoting."""


def _postgres_url(url: str, rest: str, query: str) -> DatabaseUrl:
    """A PostgreSQL URL: runtime takes ``schema``; every other option goes to libpq,
    which refuses one it does not know when it connects."""
    shown = redact(url)
    schema = "runtime"
    passed: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in seen:
            raise ConfigError(f"database URL {shown!r}: the option {name!r} is given twice")
        seen.add(name)
        if name == "schema":
            if not SCHEMA_NAME.fullmatch(value):
                raise ConfigError(
                    f"database URL {shown!r}: schema={value!r} is not a schema name runtime "
                    "uses (lower-case letters, digits and _, not starting with a digit, "
                    "at most 63)"
                )
            schema = value
        else:
            passed.append((name, value))
    tail = f"?{urlencode(passed)}" if passed else ""
    return DatabaseUrl("postgresql", f"postgresql://{rest}{tail}", {"schema": schema})


SQLITE_OPTIONS: dict[str, tuple[str, ...]] = {
    "synchronous": ("normal", "full", "extra"),
    "fast_path": ("on", "off", "true", "false", "yes", "no", "1", "0"),
}
"""The options a SQLite URL accepts, with their values (compared without case)."""


def _sqlite_options(url: str, query: str) -> dict[str, str]:
    """A SQLite URL's options, every one known and valid (a typo is never ignored)."""
    options: dict[str, str] = {}
    known = ", ".join(SQLITE_OPTIONS)
    for name, value in parse_qsl(query, keep_blank_values=True):
        values = SQLITE_OPTIONS.get(name)
        if values is None:
            close = difflib.get_close_matches(name, list(SQLITE_OPTIONS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"database URL {url!r}: unknown option {name!r}{hint}; a SQLite URL accepts {known}"
            )
        if name in options:
            raise ConfigError(f"database URL {url!r}: the option {name!r} is given twice")
        if value.lower() not in values:
            raise ConfigError(
                f"database URL {url!r}: {name}={value!r} is not one of {', '.join(values)}"
            )
        options[name] = value.lower()
    return options


@dataclasses.dataclass(frozen=True, slots=True)
class HttpAddress:
    """Where the HTTP API and dashboard listen (``runtime start --http HOST:PORT``)."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Only this machine can reach it (``127.0.0.0/8``, ``::1``, ``localhost``)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_http_address(value: Any, where: str = "http") -> HttpAddress:
    """``HOST:PORT`` (``[::1]:8000`` for IPv6) read as an address to listen on.

    Raises:
        ConfigError: naming ``where``: not ``HOST:PORT``, or a port outside 0 to 65535.
    """
    example = "HOST:PORT, e.g. 127.0.0.1:8000"
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be {example}, got {shown(value)}")
    host, sep, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    # ASCII digits only (int() also reads other scripts' digits), and few of them.
    digits = port.isascii() and port.isdigit() and len(port) <= 5
    if not sep or not host or not digits or not 0 <= int(port) <= 65535:
        raise ConfigError(
            f"{where}: must be {example} (a port from 0 to 65535), got {shown(value)}"
        )
    return HttpAddress(host, int(port))


def check_exposure(address: HttpAddress, token: str | None, where: str = "http") -> None:
    """Refuse to serve the API beyond this machine without a token.

    Raises:
        ConfigError: ``address`` is not a loopback address and no token is set.
    """
    if token is None and not address.loopback:
        raise ConfigError(
            f"{where}: refusing to serve the HTTP API and dashboard on {address} without a "
            "token: anyone who can reach that address could start, cancel and retry runs. "
            "Set http_token in runtime.toml (or RUNTIME_HTTP_TOKEN), or bind a loopback "
            "address such as 127.0.0.1"
        )


def http_token(value: Any, where: str = "http_token") -> str | None:
    """A token the API and dashboard require; ``None`` when none is set.

    Raises:
        ConfigError: not text, blank, shorter than 16 characters, or holding spaces,
            control characters or anything but ASCII (it travels in a header and a
            cookie, and is compared as bytes).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be a string, got {type(value).__name__}")
    suggestion = "(e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe())')"
    if not value.isascii():
        at = next(i for i, c in enumerate(value) if not c.isascii())
        raise ConfigError(
            f"{where}: must be ASCII characters only (character {at + 1} is not) {suggestion}"
        )
    if len(value) < MIN_TOKEN or any(c.isspace() or not c.isprintable() for c in value):
        raise ConfigError(
            f"{where}: must be at least {MIN_TOKEN} printable characters without spaces "
            + suggestion
        )
    return value


MIN_TOKEN = 16
"""The shortest ``http_token`` accepted: a short one could be guessed."""

CONFIG_FILE = "runtime.toml"
DEFAULT_DATABASE = "sqlite:///runtime.db"
ENV_PREFIX = "RUNTIME_"
DEFAULT_RETENTION = 30 * 24 * 3600.0
"""30 days: how long completed runs, delivered events and firings are kept by default."""


class ProjectConfig(BaseModel):
    """What ``runtime.toml`` (or ``[tool.runtime]`` in ``pyproject.toml``) says.

    In ``runtime.toml`` the settings may sit at the top level (as in ``ruff.toml``)
    or in a ``[runtime]`` table. Every key can be overridden by an environment
    variable ``RUNTIME_<KEY>`` (``RUNTIME_DATABASE``, ``RUNTIME_CONCURRENCY``, ...).

    Attributes:
        root: the project directory.
        source: the file the settings came from, for error messages.
        database: the database URL.
        timezone: IANA name the cron expressions of jobs are read in (default UTC).
        setup: ``module:function`` called with the container at start-up.
        concurrency: how many runs the worker drives at once.
        log_format: ``auto`` (console on a terminal, JSON otherwise), ``console``, ``json``.
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
        shutdown_grace: seconds running steps get to finish on SIGTERM/SIGINT.
        retention: seconds after which completed runs, delivered events and schedule
            firings are removed (``30d``, ``12h`` ... in the file); 0 keeps them forever.
        failed_retention: the same for failed, compensation_failed and canceled runs and
            events with a dead delivery, which an operator may still retry; 0 (the
            default) keeps them forever. See ``docs/retention.md``.
        workflows_dir, subscribers_dir, jobs_dir: the folders discovery reads.
        http: ``HOST:PORT`` where ``runtime start`` serves the HTTP API, the dashboard
            and ``/metrics`` (off when unset); see ``docs/http.md``.
        http_token: the token every API call and page then needs (``Authorization:
            Bearer ...``); without one only a loopback address may be served.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path
    source: str = "(defaults)"
    database: str = DEFAULT_DATABASE
    timezone: str = "UTC"
    setup: str | None = None
    concurrency: int = 10
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_grace: float = 30.0
    retention: float = DEFAULT_RETENTION
    failed_retention: float = 0.0
    workflows_dir: str = "workflows"
    subscribers_dir: str = "subscribers"
    jobs_dir: str = "jobs"
    http: str | None = None
    http_token: str | None = None

    # The checks (and messages) of Runtime(concurrency=..., shutdown_grace=...): a boolean
    # is a mistake, not a number; an environment variable's text is read as a number first.
    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> int:
        number = _number(value, int)
        return count(number, "concurrency", minimum=1, maximum=MAX_CONCURRENCY, error=ValueError)

    @field_validator("shutdown_grace", mode="before")
    @classmethod
    def _shutdown_grace(cls, value: Any) -> float:
        seconds = _number(value, float)
        return duration(seconds, "shutdown_grace", maximum=MAX_SHUTDOWN_GRACE, error=ValueError)

    @field_validator("retention", "failed_retention", mode="before")
    @classmethod
    def _retention(cls, value: Any, info: ValidationInfo) -> float:
        return period(value, str(info.field_name), error=ValueError)

    @field_validator("http")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_http_address(value, "http")
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("http: ")) from None
        return value

    @field_validator("http_token")
    @classmethod
    def _http_token(cls, value: str | None) -> str | None:
        try:
            return http_token(value)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("http_token: ")) from None

    @field_validator("setup")
    @classmethod
    def _setup_is_a_target(cls, value: str | None) -> str | None:
        if value is not None and (":" not in value or value.startswith(":")):
            raise ValueError(f"must be 'module:function', got {value!r}")
        return value

    @field_validator("workflows_dir", "subscribers_dir", "jobs_dir")
    @classmethod
    def _plain_folder(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value.startswith((".", "_")):
            raise ValueError(f"must be a folder name directly under the project, got {value!r}")
        return value

    def folder(self, kind: Literal["workflows", "subscribers", "jobs"]) -> Path:
        """The folder discovery reads for ``kind``."""
        folder: str = getattr(self, f"{kind}_dir")
        return self.root / folder


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    """``value`` read as a ``kind`` when it is text (an environment variable), else as is."""
    if not isinstance(value, str):
        return value
    try:
        return kind(value.strip())
    except ValueError:
        return value  # refused as it is, by the check that follows


_SETTINGS = [name for name in ProjectConfig.model_fields if name not in ("root", "source")]

TABLE = "runtime"
"""The table of ``runtime.toml`` the settings may sit in (or at the top level)."""


def _read_toml(file: Path) -> dict[str, Any]:
    """A TOML file's contents, or a :class:`ConfigError` naming it (not UTF-8, not TOML)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc.strerror or exc}") from None
    text = utf8(data, str(file), error=ConfigError)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None


def _runtime_toml_settings(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The settings of ``runtime.toml``: top-level keys and the ``[runtime]`` table, merged."""
    values: dict[str, Any] = {}
    table = data.get(TABLE, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {TABLE!r} must be a table ([{TABLE}]), got {table!r}")
    for key, value in data.items():
        if key == TABLE:
            continue
        if key in _SETTINGS:
            values[key] = value
        elif isinstance(value, dict):
            raise ConfigError(
                f"{source}: unknown table [{key}]; put the settings at the top level or in "
                f"[{TABLE}]"
            )
        else:
            raise ConfigError(f"{source}: unknown key {key!r}; known keys: {sorted(_SETTINGS)}")
    for key in table:
        if key in values:
            raise ConfigError(
                f"{source}: {key!r} is set both at the top level and in [{TABLE}]; keep one"
            )
    return {**values, **table}


def unknown_variables(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Each ``RUNTIME_<X>`` environment variable that names no setting, with a message.

    They are ignored; ``runtime check`` reports them and ``runtime start`` logs them.
    """
    env = dict(os.environ) if environ is None else environ
    known = [ENV_PREFIX + key.upper() for key in _SETTINGS]
    found = {}
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
            found[name] = f"environment variable {name} names no setting and is ignored; {hint}"
    return found


def load_project_config(root: Path, environ: dict[str, str] | None = None) -> ProjectConfig:
    """Read the project's settings.

    Raises:
        ConfigError: a project folder that does not exist; an unknown key or table, a
            bad value, a file that is not UTF-8 or not TOML, a ``*_dir`` naming a folder
            that does not exist; naming the file (or variable) and key.
    """
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ConfigError(f"the project folder {root} {what}")
    root = root.resolve()
    env = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    source = "(defaults)"
    toml_file, pyproject = root / CONFIG_FILE, root / "pyproject.toml"
    if toml_file.exists():
        source = str(toml_file)
        values = _runtime_toml_settings(_read_toml(toml_file), source)
    elif pyproject.exists():
        tool = _read_toml(pyproject).get("tool", {})
        if isinstance(tool, dict) and TABLE in tool:
            source = f"{pyproject} [tool.{TABLE}]"
            values = tool[TABLE]
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: must be a table, got {values!r}")
    for key in values:
        if key not in _SETTINGS:
            raise ConfigError(f"{source}: unknown key {key!r}; known keys: {sorted(_SETTINGS)}")
    values = dict(values)
    overridden = {}
    for key in _SETTINGS:
        variable = ENV_PREFIX + key.upper()
        if variable in env:
            overridden[key] = variable
            values[key] = env[variable]

    def where(key: str) -> str:
        return f"environment variable {overridden[key]}" if key in overridden else source

    try:
        config = ProjectConfig(root=root, source=source, **values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            message = str(error["msg"]).removeprefix("Value error, ")
            # A message of runtime.limits starts with the key ("concurrency must be ..."):
            # the key is quoted in its place instead of named twice.
            rest = message.removeprefix(f"{key} ")
            said = f"{key!r} {rest}" if rest != message else f"{key!r}: {message}"
            problems.append(f"{where(key)}: {said}")
        raise ConfigError("; ".join(problems)) from None
    try:
        parse_database_url(config.database, root)
    except ConfigError as exc:
        raise ConfigError(f"{where('database')}: 'database': {exc}") from None
    try:
        timezone(config.timezone)
    except DefinitionError as exc:
        raise ConfigError(f"{where('timezone')}: 'timezone': {exc}") from None
    kinds: tuple[Literal["workflows", "subscribers", "jobs"], ...] = (
        "workflows",
        "subscribers",
        "jobs",
    )
    for kind in kinds:
        # The default folders may be absent (a project without jobs/); a folder the
        # settings name must exist, or a typo would silently define nothing.
        key = f"{kind}_dir"
        folder = config.folder(kind)
        if key in config.model_fields_set and not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise ConfigError(f"{where(key)}: {key!r}: the folder {folder} {what}")
    return config
