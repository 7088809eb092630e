"""Secrets in the history and the whole-file editor, on generated TOML (hypothesis).

The diff masks secrets on the parsed TOML, so no string form (basic,
literal, multi-line, escaped) nor key spelling (bare, quoted, escaped,
dotted, in an inline table or an array of tables) lets a value through; a
placeholder sent back keeps exactly the stored value.
"""
from __future__ import annotations

import json
import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st

from webui.configfile import CHANGED, REDACTED, SECRET_KEYS, _mask, keep_secrets_in_text, secrets_changed

ALPHABET = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f")
SECRET = st.text(ALPHABET, min_size=6, max_size=30).map(lambda s: "S3CR3T" + s)


def _basic(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _escaped(s: str) -> str:
    return '"' + "".join(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}" for ch in s) + '"'


@st.composite
def string_form(draw: st.DrawFn, value: str) -> str:
    """`value` written as TOML in a form that can hold it."""
    forms = [_basic(value), _escaped(value)]
    if all(ch not in value for ch in "'\n\r") and all(ord(ch) >= 0x20 or ch == "\t" for ch in value):
        forms.append(f"'{value}'")
    if "'''" not in value and not value.endswith("'") and all(ord(ch) >= 0x20 or ch in "\t" for ch in value):
        forms += [f"'''{value}'''", f"'''\n{value}'''"]
    forms.append('"""' + _basic(value)[1:-1] + '"""')
    return draw(st.sampled_from(forms))


@st.composite
def key_form(draw: st.DrawFn, key: str) -> str:
    return draw(st.sampled_from([key, f'"{key}"', f"'{key}'", _escaped(key)]))


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A TOML document with secrets in many places, and the secrets by their key path."""
    placed: dict[str, str] = {}
    lines: list[str] = []
    for i in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(sorted(SECRET_KEYS)))
        value = draw(SECRET)
        where = draw(st.sampled_from(["table", "inline", "dotted", "aot", "array-inline"]))
        k, v = draw(key_form(key)), draw(string_form(value))
        if where == "table":
            lines += [f"[s{i}.sub]", f"{k} = {v}", "other = 1"]
            placed[f"s{i}.sub.{key}"] = value
        elif where == "inline":
            lines += [f"[s{i}]", f"conn = {{ url = \"mqtt://x\", {k} = {v} }}"]
            placed[f"s{i}.conn.{key}"] = value
        elif where == "dotted":
            lines += [f"[s{i}]", f"a.b.{k} = {v}"]
            placed[f"s{i}.a.b.{key}"] = value
        elif where == "aot":
            lines += [f"[[s{i}]]", f"{k} = {v}"]
            placed[f"s{i}[0].{key}"] = value
        else:
            lines += [f"[s{i}]", f"list = [ {{ {k} = {v} }} ]"]
            placed[f"s{i}.list[0].{key}"] = value
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)   # a generated document is valid TOML
    return text, placed


def _at(data: object, path: str) -> object:
    for part in path.replace("[", ".[").split("."):
        data = data[int(part[1:-1])] if part.startswith("[") else data[part]  # type: ignore[index]
    return data


@settings(max_examples=300, deadline=None)
@given(documents())
def test_no_secret_survives_masking(doc: tuple[str, dict[str, str]]) -> None:
    text, placed = doc
    masked = _mask(text)
    parsed = tomllib.loads(masked)
    for path, value in placed.items():
        assert _at(parsed, path) == REDACTED
        assert value not in masked
    assert "S3CR3T" not in masked and _escaped("S3CR3T")[1:-1] not in masked


@settings(max_examples=200, deadline=None)
@given(documents(), st.data())
def test_a_changed_secret_shows_as_changed_without_either_value(doc: tuple[str, dict[str, str]],
                                                                data: st.DataObject) -> None:
    text, placed = doc
    path = data.draw(st.sampled_from(sorted(placed)))
    new_value = "N3W" + data.draw(SECRET)
    changed = tomllib.loads(text)
    parent, key = path.rsplit(".", 1)
    _at(changed, parent)[key] = new_value  # type: ignore[index]
    import tomlkit
    new_text = tomlkit.dumps(changed)
    assert secrets_changed(text, new_text) == [path]
    masked = _mask(new_text, text)
    assert _at(tomllib.loads(masked), path) == CHANGED
    assert new_value not in masked and placed[path] not in masked


@settings(max_examples=200, deadline=None)
@given(documents())
def test_placeholders_keep_exactly_the_stored_values(doc: tuple[str, dict[str, str]]) -> None:
    text, placed = doc
    restored = keep_secrets_in_text(_mask(text), text)
    assert tomllib.loads(restored) == tomllib.loads(text)
