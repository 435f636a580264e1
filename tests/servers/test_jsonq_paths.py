"""json_query speaks RFC 9535 JSONPath: the RFC's own examples, normalized paths, bounded
regexes, and the older jsonpath_ng forms refused with what to write instead."""

from __future__ import annotations

import copy
from typing import Any

import anyio
import pytest
from fastmcp import Client, FastMCP
from kimi_mcp.servers.jsonq import build_server

from kimi_mcp.deps import Deps

pytestmark = pytest.mark.anyio


@pytest.fixture
def server(deps: Deps) -> FastMCP:
    return build_server(deps)


async def matches(server: FastMCP, expression: str, document: Any) -> list[tuple[str, Any]]:
    async with Client(server) as client:
        result = await client.call_tool(
            "query", {"expression": expression, "document": document}, raise_on_error=False
        )
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content is not None
    return [(m["path"], m["value"]) for m in result.structured_content["matches"]]


async def refusal(server: FastMCP, tool: str, **args: Any) -> str:
    async with Client(server) as client:
        result = await client.call_tool(tool, args, raise_on_error=False)
    assert result.is_error
    text: str = result.content[0].text  # type: ignore[union-attr]
    assert "Traceback" not in text and "jsonpath_rfc9535" not in text
    return text


# ---- RFC 9535, section 1.5, figure 1 and table 2 --------------------------------------------

STORE: dict[str, Any] = {
    "store": {
        "book": [
            {
                "category": "reference",
                "author": "Nigel Rees",
                "title": "Sayings of the Century",
                "price": 8.95,
            },
            {
                "category": "fiction",
                "author": "Evelyn Waugh",
                "title": "Sword of Honour",
                "price": 12.99,
            },
            {
                "category": "fiction",
                "author": "Herman Melville",
                "title": "Moby Dick",
                "isbn": "0-553-21311-3",
                "price": 8.99,
            },
            {
                "category": "fiction",
                "author": "J. R. R. Tolkien",
                "title": "The Lord of the Rings",
                "isbn": "0-395-19395-8",
                "price": 22.99,
            },
        ],
        "bicycle": {"color": "red", "price": 399},
    }
}
BOOK = "$['store']['book']"

TABLE_2 = [
    ("$.store.book[*].author", [f"{BOOK}[{i}]['author']" for i in range(4)]),
    ("$..author", [f"{BOOK}[{i}]['author']" for i in range(4)]),
    ("$.store.*", [BOOK, "$['store']['bicycle']"]),
    (
        "$.store..price",
        ["$['store']['bicycle']['price']"] + [f"{BOOK}[{i}]['price']" for i in range(4)],
    ),
    ("$..book[2]", [f"{BOOK}[2]"]),
    ("$..book[2].author", [f"{BOOK}[2]['author']"]),
    ("$..book[2].publisher", []),
    ("$..book[-1]", [f"{BOOK}[3]"]),
    ("$..book[0,1]", [f"{BOOK}[0]", f"{BOOK}[1]"]),
    ("$..book[:2]", [f"{BOOK}[0]", f"{BOOK}[1]"]),
    ("$..book[?@.isbn]", [f"{BOOK}[2]", f"{BOOK}[3]"]),
    ("$..book[?@.price<10]", [f"{BOOK}[0]", f"{BOOK}[2]"]),
]


@pytest.mark.parametrize(("expression", "paths"), TABLE_2)
async def test_rfc9535_table_2_examples_select_the_documented_nodes(
    server: FastMCP, expression: str, paths: list[str]
) -> None:
    found = await matches(server, expression, STORE)
    assert sorted(p for p, _ in found) == sorted(paths)


async def test_descendants_of_everything_are_every_member_value_and_element(
    server: FastMCP,
) -> None:
    found = await matches(server, "$..*", STORE)
    assert len(found) == 27  # store, book, bicycle, 4 books, 18 book members, 2 bicycle members
    assert found[0] == ("$['store']", STORE["store"])


# ---- RFC 9535, section 2.3.5.3, table 12 (filter examples) ----------------------------------

FILTERED: dict[str, Any] = {
    "a": [3, 5, 1, 2, 4, 6, {"b": "j"}, {"b": "k"}, {"b": {}}, {"b": "kilo"}],
    "o": {"p": 1, "q": 2, "r": 3, "s": 5, "t": {"u": 6}},
    "e": "f",
}

TABLE_12: list[tuple[str, list[str]]] = [
    ("$.a[?@.b == 'kilo']", ["$['a'][9]"]),
    ("$.a[?(@.b == 'kilo')]", ["$['a'][9]"]),
    ("$.a[?@>3.5]", ["$['a'][1]", "$['a'][4]", "$['a'][5]"]),
    ("$.a[?@.b]", ["$['a'][6]", "$['a'][7]", "$['a'][8]", "$['a'][9]"]),
    ("$[?@.*]", ["$['a']", "$['o']"]),
    ("$[?@[?@.b]]", ["$['a']"]),
    ("$.o[?@<3, ?@<3]", ["$['o']['p']", "$['o']['q']", "$['o']['p']", "$['o']['q']"]),
    ('$.a[?@<2 || @.b == "k"]', ["$['a'][2]", "$['a'][7]"]),
    ('$.a[?match(@.b, "[jk]")]', ["$['a'][6]", "$['a'][7]"]),
    ('$.a[?search(@.b, "[jk]")]', ["$['a'][6]", "$['a'][7]", "$['a'][9]"]),
    ("$.o[?@>1 && @<4]", ["$['o']['q']", "$['o']['r']"]),
    ("$.o[?@.u || @.x]", ["$['o']['t']"]),
    ("$.a[?@.b == $.x]", [f"$['a'][{i}]" for i in range(6)]),
    ("$.a[?@ == @]", [f"$['a'][{i}]" for i in range(10)]),
]


@pytest.mark.parametrize(("expression", "paths"), TABLE_12)
async def test_rfc9535_filter_examples_select_the_documented_nodes(
    server: FastMCP, expression: str, paths: list[str]
) -> None:
    found = await matches(server, expression, FILTERED)
    assert [p for p, _ in found] == paths


# ---- functions ------------------------------------------------------------------------------


async def test_length_count_and_value_functions_filter_by_size_and_content(
    server: FastMCP,
) -> None:
    doc = {"xs": [{"tags": ["a"]}, {"tags": ["a", "b", "c"]}, {"tags": "abcd"}, {"n": {"m": 1}}]}
    assert [p for p, _ in await matches(server, "$.xs[?length(@.tags) >= 3]", doc)] == [
        "$['xs'][1]",
        "$['xs'][2]",
    ]
    assert [p for p, _ in await matches(server, "$.xs[?count(@.tags[*]) == 1]", doc)] == [
        "$['xs'][0]"
    ]
    found = await matches(server, "$.xs[?value(@..m) == 1]", doc)
    assert [p for p, _ in found] == ["$['xs'][3]"]


async def test_match_is_anchored_search_is_not_and_a_dot_skips_line_breaks(
    server: FastMCP,
) -> None:
    doc = ["a-b", "xa-bx", "a\rb", "a\nb"]
    assert [v for _, v in await matches(server, "$[?match(@, 'a.b')]", doc)] == ["a-b"]
    assert [v for _, v in await matches(server, "$[?search(@, 'a.b')]", doc)] == ["a-b", "xa-bx"]


async def test_a_pattern_that_is_not_i_regexp_is_a_clear_error(server: FastMCP) -> None:
    text = await refusal(server, "query", expression=r"$[?search(@, '\\d+')]", document=["7"])
    assert "not an I-Regexp (RFC 9485)" in text and "[0-9]" in text


async def test_a_catastrophically_backtracking_regex_is_stopped_with_a_clear_error(
    server: FastMCP,
) -> None:
    # (a|aa)+c on 40 a's explores ~10^8 paths: unbounded, this runs for minutes
    document = {"s": ["a" * 40 + "!"]}
    with anyio.fail_after(30):
        text = await refusal(
            server, "query", expression="$.s[?match(@, '(a|aa)+c')]", document=document
        )
    assert "match() gave up on '(a|aa)+c'" in text and "backtracks catastrophically" in text


# ---- normalized paths (RFC 9535, section 2.7) -----------------------------------------------


async def test_normalized_paths_use_non_negative_indices_and_canonical_escapes(
    server: FastMCP,
) -> None:
    assert await matches(server, "$[-3]", [0, 1, 2, 3, 4]) == [("$[2]", 2)]
    assert await matches(server, '$["\\u000B"]', {"\u000b": 1}) == [("$['\\u000b']", 1)]
    assert await matches(server, '$["\\u0061"]', {"a": 1}) == [("$['a']", 1)]
    quoted = {"it's": {"back\\slash": {"\n": True}}}
    found = await matches(server, "$..*", quoted)
    assert [p for p, _ in found] == [
        "$['it\\'s']",
        "$['it\\'s']['back\\\\slash']",
        "$['it\\'s']['back\\\\slash']['\\n']",
    ]


async def test_every_normalized_path_selects_exactly_its_own_node(server: FastMCP) -> None:
    for path, value in await matches(server, "$..*", STORE):
        assert await matches(server, path, STORE) == [(path, value)]


# ---- semantics the old evaluator differed on ------------------------------------------------


async def test_filter_over_an_object_selects_member_values_and_leaves_the_document_alone(
    server: FastMCP,
) -> None:
    doc = {"m": {"p": {"n": 1}, "q": {"n": 3}}}
    before = copy.deepcopy(doc)
    assert await matches(server, "$.m[?@.n > 2]", doc) == [("$['m']['q']", {"n": 3})]
    assert doc == before


async def test_comparisons_across_types_are_false_not_errors(server: FastMCP) -> None:
    doc = {"xs": [{"v": 3}, {"v": "3"}, {"v": None}, {"v": True}, {"v": 2.5}]}
    assert [v["v"] for _, v in await matches(server, "$.xs[?@.v > 2]", doc)] == [3, 2.5]
    assert [v["v"] for _, v in await matches(server, "$.xs[?@.v == null]", doc)] == [None]
    assert await matches(server, "$.xs[?@.v == 1]", doc) == []


async def test_descendant_segment_walks_deep_documents_and_refuses_deeper_ones(
    server: FastMCP, deps: Deps
) -> None:
    # files, not inline documents: the MCP client itself refuses to serialise 400 levels
    for depth in (200, 400):
        text = '{"a": ' * depth + '{"x": 1}' + "}" * depth
        (deps.roots[0] / f"deep{depth}.json").write_text(text)
    async with Client(server) as client:
        result = await client.call_tool("query", {"expression": "$..x", "path": "deep200.json"})
    assert result.structured_content is not None
    assert result.structured_content["matches"] == [
        {"path": "$" + "['a']" * 200 + "['x']", "value": 1}
    ]
    text = await refusal(server, "query", expression="$..x", path="deep400.json")
    assert "nested more than 256 levels" in text and "$.a.b..name" in text


# ---- the older jsonpath_ng forms ------------------------------------------------------------

OLD_FORMS = [
    ("$.a[?(@.b > 0 & @.c == 'x')]", "'and' is &&"),
    ("$.a[?(@.b > 0 and @.c == 'x')]", "'and' is &&"),
    ("$.a[?(@.b > 0 | @.c)]", "'or' is ||"),
    ("$.a[?(@.c =~ 'y')]", "match(@.name, 'ab.*')"),
    ("$.a.`len`", "length(@.tags)"),
    ("$.a[0].`keys`", "structure tool"),
    ("$.a[?(@.b = 1)]", "equality is =="),
    ("$.a[?(@.b in [1, 2])]", "no 'in'"),
    ("$.a[?@.b == True]", "lowercase: true, false, null"),
    ("$.my-key", "$['my-key']"),
    ("users[0].name", "starts at the root"),
]


@pytest.mark.parametrize(("expression", "advice"), OLD_FORMS)
async def test_old_jsonpath_ng_forms_are_refused_with_the_rfc9535_form(
    server: FastMCP, expression: str, advice: str
) -> None:
    text = await refusal(server, "query", expression=expression, document={"a": []})
    assert text.startswith("Invalid JSONPath in `expression` at character ")
    assert advice in text


async def test_structure_names_the_at_parameter_when_it_is_not_jsonpath(server: FastMCP) -> None:
    text = await refusal(server, "structure", document={"a": [1]}, at="$.a.`len`")
    assert text.startswith("Invalid JSONPath in `at`") and "length(" in text


async def test_update_refuses_old_syntax_and_leaves_the_file_alone(
    server: FastMCP, deps: Deps
) -> None:
    target = deps.roots[0] / "d.json"
    target.write_text('{"a": [{"b": 1}]}\n')
    text = await refusal(server, "update", path="d.json", expression="$.a[?(@.b = 1)].b", value=2)
    assert text.startswith("Invalid JSONPath in `expression`") and "==" in text
    assert target.read_text() == '{"a": [{"b": 1}]}\n'
