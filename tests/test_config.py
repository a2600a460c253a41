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
        ("[runtime]\ndatabase = 3\n", "'database': Input should be a valid string"),
        ('[runtime]\nsetup = "services"\n', "'setup': must be 'module:function'"),
        (
            "[runtime]\nconcurrency = 0\n",
            "'concurrency': Input should be greater than or equal to 1",
        ),
        ('[runtime]\ntimezone = "Mars/Olympus"\n', "unknown timezone 'Mars/Olympus'"),
        ('[runtime]\nlog_format = "xml"\n', "'log_format'"),
        ('[runtime]\njobs_dir = "../jobs"\n', "'jobs_dir': must be a folder name"),
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


def test_every_key_has_an_environment_override(tmp_path: Path) -> None:
    config = load_project_config(
        tmp_path,
        environ={"RUNTIME_CONCURRENCY": "4", "RUNTIME_TIMEZONE": "Europe/Paris",
                 "RUNTIME_SHUTDOWN_GRACE": "2.5", "RUNTIME_LOG_FORMAT": "json"},
    )  # fmt: skip
    assert (config.concurrency, config.timezone, config.shutdown_grace, config.log_format) == (
        4, "Europe/Paris", 2.5, "json",
    )  # fmt: skip


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="environment variable RUNTIME_CONCURRENCY: 'concurrency'"
    ):
        load_project_config(tmp_path, environ={"RUNTIME_CONCURRENCY": "many"})
