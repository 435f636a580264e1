"""The fast JSONPath evaluator agrees with jsonpath_ng where jsonpath_ng is right."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonpath_ng.ext import parse
from kimi_mcp.servers.jsonq.engine import JsonError
from kimi_mcp.servers.jsonq.paths import _datum_parts, find, path_of

DOC: dict[str, Any] = {
    "a": [{"b": 1, "c": "x", "d": {"b": 7}}, {"b": 5, "c": "yz"}, {"c": None}],
    "d": {"e": {"b": 2}},
    "k": [1, 2, 3, 4, 5],
    "m": {"p": {"n": 1}, "q": {"n": 3}},
}

AGREED = [
    "$",
    "$.a[0]",
    "$.a[-1]",
    "$.a[*].b",
    "$.a[*]['b','c']",
    "$.a[0:2]",
    "$.k[1:4:2]",
    "$.k[-2:]",
    "$.k[0,2]",
    "$.*",
    "$..b",
    "$..*",
    "$..d.b",
    "$.a[*].d..b",
    "$.a[*]..b",
    "$.a[?(@.b > 2)]",
    "$.a[?(@.b)]",
    "$.a[?(@.c == 'x')]",
    "$.a[?(@.c =~ 'y')]",
    "$.a[?(@.b > 0 & @.c == 'x')]",
    "$.a[?(@.d.b == 7)]",
    "$.a[?(@.b > 1)].c",
    "$.k[?(@ >= 3)]",
    "$.a.`len`",
    "$..b.`len`",
    "$.a[0].`keys`",
]


@pytest.mark.parametrize("expression", AGREED)
def test_fast_evaluator_matches_jsonpath_ng(expression: str) -> None:
    expected = [(_datum_parts(d), d.value) for d in parse(expression).find(copy.deepcopy(DOC))]
    assert find(DOC, expression) == expected


def test_filter_over_an_object_selects_member_values_and_leaves_the_document_alone() -> None:
    before = copy.deepcopy(DOC)
    found = find(DOC, "$.m[?(@.n > 2)]")
    assert [path_of(parts) for parts, _ in found] == ["$['m']['q']"]
    assert before == DOC


def test_null_literal_matches_json_null() -> None:
    assert [p for p, _ in find(DOC, "$.a[?(@.c == null)]")] == [("a", 2)]


def test_comparisons_across_types_are_false_not_errors() -> None:
    doc = {"xs": [{"v": 3}, {"v": "3"}, {"v": None}, {"v": True}, {"v": 2.5}]}
    assert [v["v"] for _, v in find(doc, "$.xs[?(@.v > 2)]")] == [3, 2.5]
    assert [v["v"] for _, v in find(doc, "$.xs[?(@.v == 1)]")] == []


def test_computed_values_have_no_path() -> None:
    assert find(DOC, "$.k.`len`") == [(None, 5)]
    assert path_of(None) == "(computed value)"


def test_bad_regex_in_a_filter_is_a_clear_error() -> None:
    with pytest.raises(JsonError, match="Invalid regular expression"):
        find(DOC, "$.a[?(@.c =~ '(')]")
