"""Configuration: database URLs (and, with the service, ``runtime.toml``)."""

from __future__ import annotations

import dataclasses
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
