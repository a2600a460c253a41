"""Configuration: database URLs (and, with the service, ``runtime.toml``)."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from urllib.parse import parse_qsl

from runtime.errors import ConfigError


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

_KEYS = {"database": str, "setup": str}
DEFAULT_DATABASE = "sqlite:///runtime.db"


@dataclasses.dataclass(frozen=True, slots=True)
class ProjectConfig:
    """What ``runtime.toml`` (or ``[tool.runtime]`` in ``pyproject.toml``) says.

    Attributes:
        root: the project directory.
        database: the database URL (``RUNTIME_DATABASE`` overrides it).
        setup: ``module:function`` called with the container at start-up, or ``None``.
        source: the file the settings came from, for error messages.
    """

    root: Path
    database: str = DEFAULT_DATABASE
    setup: str | None = None
    source: str = "(defaults)"


def load_project_config(root: Path, environ: dict[str, str] | None = None) -> ProjectConfig:
    """Read the project's settings; unknown keys and wrong types are errors naming the key."""
    root = root.resolve()
    env = dict(os.environ) if environ is None else environ
    values: dict[str, object] = {}
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
    for key, value in values.items():
        expected = _KEYS.get(key)
        if expected is None:
            raise ConfigError(f"{source}: unknown key {key!r}; known keys: {sorted(_KEYS)}")
        if not isinstance(value, expected):
            raise ConfigError(
                f"{source}: {key!r} must be a {expected.__name__}, got {type(value).__name__}"
            )
    if "RUNTIME_DATABASE" in env:
        values["database"] = env["RUNTIME_DATABASE"]
    setup = values.get("setup")
    if setup is not None and ":" not in str(setup):
        raise ConfigError(f"{source}: 'setup' must be 'module:function', got {setup!r}")
    database = str(values.get("database", DEFAULT_DATABASE))
    parse_database_url(database, root)
    return ProjectConfig(
        root=root, database=database, setup=None if setup is None else str(setup), source=source
    )
