"""Project configuration: runtime.toml, [tool.runtime], environment overrides, bad keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import Runtime
from runtime.config import (
    http_token,
    load_project_config,
    parse_database_url,
    parse_http_address,
    redact,
    secrets_of,
    unknown_variables,
)
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
            "'concurrency' must be between 1 and 10000, got 0",
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
        environ={
            "RUNTIME_CONCURRENCY": "4",
            "RUNTIME_TIMEZONE": "Europe/Paris",
            "RUNTIME_SHUTDOWN_GRACE": "2.5",
            "RUNTIME_LOG_FORMAT": "json",
        },
    )
    assert (config.concurrency, config.timezone, config.shutdown_grace, config.log_format) == (
        4,
        "Europe/Paris",
        2.5,
        "json",
    )


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="environment variable RUNTIME_CONCURRENCY: 'concurrency'"
    ):
        load_project_config(tmp_path, environ={"RUNTIME_CONCURRENCY": "many"})


# -- issue 7: both forms of runtime.toml, and bad files -----------------------------------


@pytest.mark.parametrize(
    "body",
    [
        'database = "sqlite:///top.db"\nconcurrency = 4\n',
        '[runtime]\ndatabase = "sqlite:///top.db"\nconcurrency = 4\n',
        'database = "sqlite:///top.db"\n[runtime]\nconcurrency = 4\n',
    ],
    ids=["top-level", "runtime-table", "both"],
)
def test_settings_at_the_top_level_or_in_a_runtime_table(tmp_path: Path, body: str) -> None:
    # Failed before: top-level settings were silently ignored (the default database was used).
    (tmp_path / "runtime.toml").write_text(body)
    config = load_project_config(tmp_path, environ={})
    assert (config.database, config.concurrency) == ("sqlite:///top.db", 4)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("[runtim]\nconcurrency = 4\n", "unknown table [runtim]"),
        ("databse = 'sqlite:///a.db'\n", "unknown key 'databse'"),
        ("concurrency = 4\n[runtime]\nconcurrency = 5\n", "'concurrency' is set both"),
        ("runtime = 3\n", "'runtime' must be a table"),
        ("[runtime]\nconcurrency = true\n", "'concurrency' must be an int, got True"),
        (
            "shutdown_grace = false\n",
            "'shutdown_grace' must be seconds (a number) or a timedelta, got False",
        ),
        ("shutdown_grace = nan\n", "'shutdown_grace' must be a finite number of seconds, got nan"),
        ("shutdown_grace = inf\n", "'shutdown_grace' must be a finite number of seconds, got inf"),
        ("shutdown_grace = -1\n", "'shutdown_grace' must be >= 0 seconds, got -1"),
        (
            "shutdown_grace = 1e9\n",
            "'shutdown_grace' must be at most 3600 seconds, got 1000000000.0",
        ),
        ("concurrency = 100000\n", "'concurrency' must be between 1 and 10000, got 100000"),
    ],
)
def test_bad_runtime_toml_names_the_file_and_what_is_wrong(
    tmp_path: Path, body: str, needle: str
) -> None:
    # Failed before: each was accepted (or ignored) without a word.
    (tmp_path / "runtime.toml").write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_project_config(tmp_path, environ={})
    assert needle in str(caught.value)
    assert str(tmp_path / "runtime.toml") in str(caught.value)


@pytest.mark.parametrize(
    ("key", "toml", "value"),
    [
        ("concurrency", "true", True),
        ("concurrency", "0", 0),
        ("concurrency", "2.5", 2.5),
        ("concurrency", "100000", 100000),
        ("shutdown_grace", "false", False),
        ("shutdown_grace", "-1", -1),
        ("shutdown_grace", "nan", float("nan")),
        ("shutdown_grace", "7200", 7200),
    ],
)
def test_runtime_toml_and_runtime_say_the_same_of_one_bad_value(
    tmp_path: Path, key: str, toml: str, value: object
) -> None:
    """Bug: two validators for the same settings, two messages for one mistake ("must be a
    number, got true" / "Input should be greater than or equal to 1" from runtime.toml,
    "concurrency must be an int, got True" from Runtime(...)). Now one, runtime.limits."""
    (tmp_path / "runtime.toml").write_text(f"{key} = {toml}\n")
    with pytest.raises(ConfigError) as from_file:
        load_project_config(tmp_path, environ={})
    with pytest.raises(ConfigError) as from_code:
        Runtime(database=f"sqlite:///{tmp_path}/x.db", **{key: value})  # type: ignore[arg-type]
    said = str(from_code.value)
    assert said.startswith(f"{key} must be ")
    assert (
        str(from_file.value)
        == f"{tmp_path / 'runtime.toml'}: '{key}' {said.removeprefix(key + ' ')}"
    )


@pytest.mark.parametrize("name", ["runtime.toml", "pyproject.toml"])
def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path, name: str) -> None:
    # Failed before: UnicodeDecodeError escaped (a traceback from every command).
    (tmp_path / name).write_bytes(b'[tool.runtime]\ndatabase = "caf\xe9.db"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(line 2: byte 30 is 0xe9\)"):
        load_project_config(tmp_path, environ={})


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("RUNTIME_CONCURRENCY", "true", "'concurrency' must be an int, got 'true'"),
        ("RUNTIME_SHUTDOWN_GRACE", "nan", "must be a finite number of seconds, got nan"),
        ("RUNTIME_SHUTDOWN_GRACE", "inf", "must be a finite number of seconds, got inf"),
        ("RUNTIME_DATABASE", "nonsense", "environment variable RUNTIME_DATABASE: 'database'"),
        ("RUNTIME_TIMEZONE", "Mars/Base", "environment variable RUNTIME_TIMEZONE: 'timezone'"),
        ("RUNTIME_TIMEZONE", "", "environment variable RUNTIME_TIMEZONE: 'timezone'"),
        ("RUNTIME_DATABASE", "", "environment variable RUNTIME_DATABASE: 'database'"),
        ("RUNTIME_CONCURRENCY", " 4x", "'concurrency' must be an int, got ' 4x'"),
        ("RUNTIME_JOBS_DIR", "nojobs", "environment variable RUNTIME_JOBS_DIR: 'jobs_dir'"),
        ("RUNTIME_DATABASE", "sqlite:///x.db?foo=1", "unknown option 'foo'"),
    ],
)
def test_a_bad_variable_is_named(tmp_path: Path, variable: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_project_config(tmp_path, environ={variable: value})
    assert needle in str(caught.value) and variable in str(caught.value)


def test_pyproject_tool_runtime_still_works_and_ignores_other_tools(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.ruff]\nline-length = 100\n[tool.runtime]\nconcurrency = 3\n"
    )
    assert load_project_config(tmp_path, environ={}).concurrency == 3
    (tmp_path / "pyproject.toml").write_text("[tool]\nruntime = 3\n")
    with pytest.raises(ConfigError, match=r"\[tool.runtime\]: must be a table"):
        load_project_config(tmp_path, environ={})


def test_unknown_runtime_variables_are_listed_with_a_hint() -> None:
    found = unknown_variables(
        {
            "RUNTIME_CONCURENCY": "3",
            "RUNTIME_DATABASE": "sqlite:///a.db",
            "RUNTIMEX": "1",
            "RUNTIME_ZZZ": "1",
            "PATH": "/bin",
        }
    )
    assert list(found) == ["RUNTIME_CONCURENCY", "RUNTIME_ZZZ"]
    assert found["RUNTIME_CONCURENCY"].endswith("is ignored; did you mean RUNTIME_CONCURRENCY?")
    assert "known: RUNTIME_DATABASE, RUNTIME_TIMEZONE" in found["RUNTIME_ZZZ"]


def test_a_project_folder_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"the project folder .*typo does not exist"):
        load_project_config(tmp_path / "typo", environ={})
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"the project folder .*file is not a folder"):
        load_project_config(tmp_path / "file", environ={})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:sekret@db:5432/app", "postgresql://app:***@db:5432/app"),
        ("postgresql://app:se/kr@et@db/app?schema=x", "postgresql://app:***@db/app?schema=x"),
        (
            "postgresql://app@db/app?password=sekret&sslmode=require",
            "postgresql://app@db/app?password=***&sslmode=require",
        ),
        ("postgresql://db/app", "postgresql://db/app"),
        ("sqlite:///app.db", "sqlite:///app.db"),
    ],
)
def test_redact_hides_every_password_a_url_carries(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "sekret" not in redact(url)


def test_secrets_of_finds_the_password_as_written_and_decoded() -> None:
    assert secrets_of("postgresql://app:se%2Fkret@db/app") == ["se%2Fkret", "se/kret"]
    assert secrets_of("postgresql://app@db/app?password=x%40y") == ["x@y"]
    assert secrets_of("postgresql://app@db/app") == []


OTHER_DIGITS = [
    "\uff18\uff10\uff10\uff10",  # 8000 in fullwidth digits
    "\u0668\u0660\u0660\u0660",  # 8000 in Arabic-Indic digits
    "\u00b2",  # superscript two: isdigit() says yes, int() says no
    "8\u0660",
    "9" * 5000,  # past int()'s 4300 digits
    "+80",
]


@pytest.mark.parametrize("port", OTHER_DIGITS)
def test_a_port_in_other_digits_is_refused(port: str) -> None:
    # Failed before: int() read the first two as 8000; the superscript and the 5000 nines
    # escaped as a raw ValueError.
    with pytest.raises(ConfigError, match=r"^--http: must be HOST:PORT.*from 0 to 65535"):
        parse_http_address(f"127.0.0.1:{port}", "--http")
    assert parse_http_address("127.0.0.1:08000").port == 8000


NON_ASCII_TOKEN = "s3cret-t\u00f6ken-for-tests"


def test_a_token_that_is_not_ascii_is_refused_naming_where_it_came_from(tmp_path: Path) -> None:
    # Failed before: printable, so accepted; a cookie or header cannot carry it as is.
    with pytest.raises(ConfigError, match=r"^create_app\(token=...\): must be ASCII .*9"):
        http_token(NON_ASCII_TOKEN, "create_app(token=...)")
    with pytest.raises(ConfigError, match=r"Runtime\(http_token=...\): must be ASCII"):
        Runtime(f"sqlite:///{tmp_path / 'a.db'}", http_token=NON_ASCII_TOKEN)
    (tmp_path / "runtime.toml").write_text(f'http_token = "{NON_ASCII_TOKEN}"\n')
    with pytest.raises(ConfigError, match=r"runtime\.toml: 'http_token': must be ASCII"):
        load_project_config(tmp_path, environ={})
    (tmp_path / "runtime.toml").unlink()
    environ = {"RUNTIME_HTTP_TOKEN": "x" * 16 + "\udcff"}  # a byte that is not UTF-8
    with pytest.raises(ConfigError, match="environment variable RUNTIME_HTTP_TOKEN: 'http_token'"):
        load_project_config(tmp_path, environ=environ)
    assert http_token("x" * 16 + "~!#$%") == "x" * 16 + "~!#$%"
