"""((variable)) substitution: typed whole values, text splices, sub-keys, and what stays unresolved."""

from __future__ import annotations

import pytest

from scripts.manifests.errors import ManifestError
from scripts.manifests.variables import interpolate, references


def test_a_whole_value_keeps_the_variables_type() -> None:
    out = interpolate(
        {"azs": "((azs))", "n": "((n))", "tls": "((flag))"}, {"azs": ["z1"], "n": 2, "flag": False}
    )
    assert out == {"azs": ["z1"], "n": 2, "tls": False}


def test_inside_a_string_the_value_is_spliced_as_text() -> None:
    out = interpolate({"url": "https://((host)):((port))/x"}, {"host": "api.example.com", "port": 443})
    assert out == {"url": "https://api.example.com:443/x"}


def test_a_structured_variable_is_read_by_key() -> None:
    cert = {"ca": "CA-PEM", "certificate": "CERT-PEM"}
    assert interpolate(["((tls.ca))", "((tls.certificate))"], {"tls": cert}) == ["CA-PEM", "CERT-PEM"]


def test_a_missing_key_of_a_known_variable_is_an_error() -> None:
    with pytest.raises(ManifestError, match="variable 'tls' has no key 'cert'"):
        interpolate("((tls.cert))", {"tls": {"ca": "x"}})


def test_unknown_variables_stay_as_placeholders() -> None:
    # Secrets CredHub generates at deploy time must survive rendering unchanged.
    doc = {"password": "((secret))", "note": "key ((secret.ca)) here", "known": "((a))"}
    assert interpolate(doc, {"a": 1}) == {
        "password": "((secret))",
        "note": "key ((secret.ca)) here",
        "known": 1,
    }


def test_strict_names_every_missing_variable() -> None:
    with pytest.raises(ManifestError, match=r"no value for variables: a, b$"):
        interpolate(["((b))", "((a.x))", "((c))"], {"c": 1}, strict=True)


def test_map_keys_are_substituted_too() -> None:
    assert interpolate({"((k))": 1}, {"k": "name"}) == {"name": 1}


def test_a_list_cannot_be_spliced_into_text() -> None:
    with pytest.raises(ManifestError, match="must be a string or number"):
        interpolate("zones: ((azs))", {"azs": ["z1"]})


def test_values_are_not_interpolated_again() -> None:
    assert interpolate("((a))", {"a": "((b))", "b": "x"}) == "((b))"


def test_absolute_names_and_the_bang_form() -> None:
    out = interpolate(["((/bosh/cf/uaa_secret))", "((!pw))"], {"/bosh/cf/uaa_secret": "s", "pw": "p"})
    assert out == ["s", "p"]


def test_references_lists_variable_names_not_their_keys() -> None:
    assert references({"a": ["((x.ca))", "pre ((y)) post"], "((z))": 1, "n": 3}) == {"x", "y", "z"}
