"""Configuration: database URLs (and, with the service, ``runtime.toml``)."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runtime.cron import timezone
from runtime.errors import ConfigError, DefinitionError


@dataclasses.dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed database URL.

    Attributes:
        scheme: ``sqlite`` (``postgresql`` comes with its store).
        path: the SQLite file (absolute), or ``:memory:``.
        options: query parameters, e.g. ``synchronous=full``.
    """

    scheme: str
    path: str
    options: dict[str, str]


def parse_database_url(url: str, base_dir: Path | None = None) -> DatabaseUrl:
    """Parse ``sqlite:///relative.db`` (relative to ``base_dir``) or ``sqlite:////abs.db``."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"database URL {url!r} is not a URL; use sqlite:///relative/path.db, "
            "sqlite:////absolute/path.db or postgresql://user@host/db"
        )
    scheme, rest = url.split("://", 1)
    rest, _, query = rest.partition("?")
    options = dict(parse_qsl(query))
    if scheme == "sqlite":
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
        raise ConfigError(
            f"database URL {url!r}: the PostgreSQL store is not available in this version; "
            "use a sqlite:/// URL"
        )
    raise ConfigError(f"database URL {url!r}: unknown scheme {scheme!r}; use sqlite")


CONFIG_FILE = "runtime.toml"
DEFAULT_DATABASE = "sqlite:///runtime.db"
ENV_PREFIX = "RUNTIME_"


class ProjectConfig(BaseModel):
    """What ``runtime.toml`` (or ``[tool.runtime]`` in ``pyproject.toml``) says.

    Every key can be overridden by an environment variable ``RUNTIME_<KEY>``
    (``RUNTIME_DATABASE``, ``RUNTIME_CONCURRENCY``, ...).

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
        workflows_dir, subscribers_dir, jobs_dir: the folders discovery reads.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path
    source: str = "(defaults)"
    database: str = DEFAULT_DATABASE
    timezone: str = "UTC"
    setup: str | None = None
    concurrency: int = Field(default=10, ge=1, le=10_000)
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_grace: float = Field(default=30.0, ge=0)
    workflows_dir: str = "workflows"
    subscribers_dir: str = "subscribers"
    jobs_dir: str = "jobs"

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


_SETTINGS = [name for name in ProjectConfig.model_fields if name not in ("root", "source")]


def load_project_config(root: Path, environ: dict[str, str] | None = None) -> ProjectConfig:
    """Read the project's settings.

    Raises:
        ConfigError: an unknown key or a bad value, naming the file (or variable) and key.
    """
    root = root.resolve()
    env = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    source = "(defaults)"
    toml_file, pyproject = root / CONFIG_FILE, root / "pyproject.toml"
    try:
        if toml_file.exists():
            source = str(toml_file)
            values = tomllib.loads(toml_file.read_text()).get("runtime", {})
        elif pyproject.exists():
            data = tomllib.loads(pyproject.read_text())
            if "runtime" in data.get("tool", {}):
                source = f"{pyproject} [tool.runtime]"
                values = data["tool"]["runtime"]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: [runtime] must be a table")
    for key in values:
        if key not in _SETTINGS:
            raise ConfigError(f"{source}: unknown key {key!r}; known keys: {sorted(_SETTINGS)}")
    overridden = {}
    for key in _SETTINGS:
        variable = ENV_PREFIX + key.upper()
        if variable in env:
            overridden[key] = variable
            values[key] = env[variable]
    try:
        config = ProjectConfig(root=root, source=source, **values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            where = f"environment variable {overridden[key]}" if key in overridden else source
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {key!r}: {message}")
        raise ConfigError("; ".join(problems)) from None
    parse_database_url(config.database, root)
    try:
        timezone(config.timezone)
    except DefinitionError as exc:
        raise ConfigError(f"{source}: 'timezone': {exc}") from None
    return config
