"""Project configuration: runtime.toml, [tool.runtime], environment overrides, bad keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import load_project_config, parse_database_url
from runtime.errors import ConfigError


def test_defaults_without_any_file(tmp_path: Path) -> None:
    config = load_project_config(tmp_path, environ={})
    assert config.database == "sqlite:///runtime.db"
    assert config.setup is None


def test_runtime_toml_is_read(tmp_path: Path) -> None:
    (tmp_path / "runtime.toml").write_text(
        '[runtime]\ndatabase = "sqlite:///data/app.db"\nsetup = "services:setup"\n'
    )
    config = load_project_config(tmp_path, environ={})
    assert config.database == "sqlite:///data/app.db"
    assert config.setup == "services:setup"
    assert config.source.endswith("runtime.toml")


def test_pyproject_tool_section_is_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.runtime]\ndatabase = "sqlite:///x.db"\n')
    assert load_project_config(tmp_path, environ={}).database == "sqlite:///x.db"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    (tmp_path / "runtime.toml").write_text('[runtime]\ndatabase = "sqlite:///a.db"\n')
    config = load_project_config(tmp_path, environ={"RUNTIME_DATABASE": "sqlite:///b.db"})
    assert config.database == "sqlite:///b.db"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('[runtime]\ndatabse = "sqlite:///a.db"\n', "unknown key 'databse'"),
        ("[runtime]\ndatabase = 3\n", "'database' must be a str"),
        ('[runtime]\nsetup = "services"\n', "'setup' must be 'module:function'"),
        ('[runtime]\ndatabase = "mysql://x"\n', "unknown scheme 'mysql'"),
        ("[runtime\n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_file_and_key(tmp_path: Path, body: str, needle: str) -> None:
    (tmp_path / "runtime.toml").write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_project_config(tmp_path, environ={})
    assert needle in str(caught.value)
    if "TOML" not in needle and "scheme" not in needle:
        assert "runtime.toml" in str(caught.value)


def test_sqlite_urls_relative_and_absolute(tmp_path: Path) -> None:
    assert parse_database_url("sqlite:///app.db", tmp_path).path == str(tmp_path / "app.db")
    assert parse_database_url("sqlite:////var/x.db", tmp_path).path == "/var/x.db"
    url = parse_database_url("sqlite:///a.db?synchronous=full", tmp_path)
    assert url.options == {"synchronous": "full"}
    with pytest.raises(ConfigError, match="not a URL"):
        parse_database_url("app.db")
