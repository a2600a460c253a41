"""Random runtime.toml files and RUNTIME_ variables: accepted, or a ConfigError naming the
file (or variable) and what is wrong; never another exception."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from runtime.config import ProjectConfig, load_project_config
from runtime.errors import ConfigError
from tests.properties.strategies import FAST, toml_value, toml_values

SETTINGS = sorted(set(ProjectConfig.model_fields) - {"root", "source"})
keys = st.one_of(st.sampled_from([*SETTINGS, "runtime", "runtim"]), st.text(max_size=10))
documents = st.dictionaries(keys, toml_values, max_size=4)
variables = st.dictionaries(
    st.one_of(
        st.sampled_from([f"RUNTIME_{k.upper()}" for k in SETTINGS]),
        st.text("ABCXYZ_", min_size=1, max_size=8).map("RUNTIME_".__add__),
    ),
    st.text(st.characters(exclude_characters="\x00"), max_size=20),
    max_size=3,
)


def write(path: Path, document: dict[str, Any], tabled: bool) -> None:
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in document.items()]
    path.write_text(("[runtime]\n" if tabled else "") + "\n".join(lines) + "\n")


def toml_key(key: str) -> str:
    return (
        key
        if re.fullmatch(r"[A-Za-z0-9_-]+", key)
        else '"' + key.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    )


@FAST
@given(document=documents, tabled=st.booleans(), environ=variables, junk=st.binary(max_size=8))
def test_any_runtime_toml_is_accepted_or_a_config_error_naming_it(
    tmp_path: Path, document: dict[str, Any], tabled: bool, environ: dict[str, str], junk: bytes
) -> None:
    toml = tmp_path / "runtime.toml"
    write(toml, document, tabled)
    if junk and not document:
        toml.write_bytes(junk)  # sometimes not UTF-8, not TOML
    try:
        config = load_project_config(tmp_path, environ=environ)
    except ConfigError as exc:
        message = str(exc)
        assert str(toml) in message or "environment variable RUNTIME_" in message, message
        named = [*document, *(k.removeprefix("RUNTIME_").lower() for k in environ)]
        assert (
            any(repr(k) in message or f"[{k}]" in message for k in named)
            or "not valid TOML" in message
            or "not UTF-8" in message
        ), message
    else:
        assert config.source == str(toml)
        for key in set(document) & set(SETTINGS):
            if not tabled and f"RUNTIME_{key.upper()}" not in environ:
                assert getattr(config, key) == document[key] or key == "shutdown_grace"
