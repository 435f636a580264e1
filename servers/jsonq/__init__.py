"""The `json` family: query, outline, update and validate JSON documents in the workspace.

The logic lives in `engine` (containment, JSONPath, parse cache, atomic writes), `outline`
and `edit`; the tools here only translate arguments, results and refusals.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace

from .edit import Change, Style, apply_update
from .engine import (
    MAX_OUTPUT_CHARS,
    SAMPLES,
    JsonError,
    JsonFiles,
    JsonSyntaxError,
    json_size,
    nests_deeper,
    parse_text,
    spread,
    type_name,
)
from .outline import OutlineNode, Outliner
from .paths import find, render

if TYPE_CHECKING:
    from kimi_mcp.deps import Deps

# ---- results --------------------------------------------------------------------------------


class QueryMatch(BaseModel):
    path: str
    value: Any


class QueryResult(BaseModel):
    expression: str
    total: int = Field(description="How many matches the expression has in all")
    returned: int
    values: list[Any] | None = Field(default=None, description="Set when result_type='value'")
    paths: list[str] | None = Field(default=None, description="Set when result_type='path'")
    matches: list[QueryMatch] | None = Field(default=None, description="Set when result_type='all'")
    truncated: bool = False
    next_offset: int | None = Field(default=None, description="Pass as offset to get the rest")
    hint: str | None = None


class StructureResult(BaseModel):
    source: str
    root_type: str
    bytes: int | None = Field(default=None, description="File size, for a file")
    nodes: list[OutlineNode]
    truncated: bool = False
    hint: str | None = None


class UpdateResult(BaseModel):
    path: str
    operation: str
    dry_run: bool
    written: bool = Field(description="True when the file on disk was changed")
    changed: int = Field(description="Number of locations changed")
    changes: list[Change]
    truncated: bool = False
    hint: str | None = None


class SyntaxIssue(BaseModel):
    message: str
    line: int
    column: int
    context: str = Field(description="The text around the error")


class SchemaIssue(BaseModel):
    path: str = Field(description="Where the failing value is, as $['key'][0]")
    message: str
    validator: str = Field(description="The schema keyword that failed, e.g. required, type")
    schema_path: str


class ValidateResult(BaseModel):
    valid: bool
    syntax_error: SyntaxIssue | None = None
    schema_checked: bool = False
    error_count: int = 0
    errors: list[SchemaIssue] = Field(default_factory=list)
    truncated: bool = False


# ---- operations -----------------------------------------------------------------------------


MAX_MATCH_DEPTH = 200


def run_query(
    value: Any, expression: str, result_type: str, limit: int, offset: int
) -> QueryResult:
    matches = find(value, expression)
    result = QueryResult(expression=expression, total=len(matches), returned=0)
    picked: list[tuple[str, Any]] = []
    used = 0
    for parts, found in matches[offset : offset + limit]:
        path = render(parts)
        size = (len(path) if result_type != "value" else 0) + 4
        # the answer's serializer stops at about 255 levels: a deeper match cannot be returned
        too_deep = result_type != "path" and nests_deeper(found, MAX_MATCH_DEPTH)
        if result_type != "path" and not too_deep:
            size += json_size(found, MAX_OUTPUT_CHARS - used)
        if used + size > MAX_OUTPUT_CHARS or too_deep:
            if not picked:
                what = (
                    f"nests over {MAX_MATCH_DEPTH} levels of arrays and objects"
                    if too_deep
                    else f"is over {MAX_OUTPUT_CHARS:,} characters of JSON"
                )
                result.hint = (
                    f"The match at {path} {what}; "
                    "outline it with the structure tool (at=that path) or select inside it. "
                    "next_offset skips it."
                )
                result.next_offset = offset + 1
            break
        used += size
        picked.append((path, found))
    result.returned = len(picked)
    if result_type == "value":
        result.values = [v for _, v in picked]
    elif result_type == "path":
        result.paths = [p for p, _ in picked]
    else:
        result.matches = [QueryMatch(path=p, value=v) for p, v in picked]
    remaining = len(matches) - offset - len(picked)
    if remaining > 0:
        result.truncated = True
        result.next_offset = result.next_offset or offset + len(picked)
        result.hint = result.hint or (
            f"{remaining} more match(es); call again with offset={result.next_offset}, "
            "or narrow the expression"
        )
    return result


def run_outline(
    value: Any, at: str, max_depth: int, max_nodes: int
) -> tuple[str, list[OutlineNode], bool]:
    outliner = Outliner(max_depth, max_nodes)
    if at.strip() in ("", "$"):
        outliner.visit([value], [], 0, False)
        return type_name(value), outliner.nodes, outliner.truncated
    matches = find(value, at, param="at")
    if not matches:
        raise JsonError(f"{at!r} matched nothing; outline '$' first to see what is there")
    samples = spread([v for _, v in matches], SAMPLES)
    outliner.visit(samples, [], 0, False)
    prefix = render(matches[0][0]) if len(matches) == 1 else at.strip()
    for node in outliner.nodes:
        node.path = prefix + node.path[1:]
    first = outliner.nodes[0]
    if len(matches) > 1:
        first.note = f"{len(matches)} matches merged (outline of {len(samples)} samples)"
    return first.type, outliner.nodes, outliner.truncated


def load_schema(schema: Any, schema_path: str | None, files: JsonFiles) -> Any:
    if schema is not None and schema_path is not None:
        raise JsonError("Give either schema or schema_path, not both")
    if schema_path is not None:
        return files.load(files.resolve(schema_path))
    if isinstance(schema, str):
        try:
            return parse_text(schema, "schema")
        except JsonSyntaxError as exc:
            raise JsonError(f"The schema is not valid JSON: {exc}") from None
    return schema


def schema_issues(
    value: Any, schema: Any, max_errors: int, files: JsonFiles, base: str | None = None
) -> tuple[int, list[SchemaIssue]]:
    """Validate `value`; `$ref`s resolve inside the document, or to JSON files inside the
    workspace (relative to `base`, the schema file's canonical path). Nothing is fetched:
    http(s) and every other scheme, and files outside the workspace, are refused."""
    # imported on first use: jsonschema is the heaviest import of the family and most
    # sessions never validate, so `kimi-mcp stdio` starts without it
    import jsonschema
    from referencing.exceptions import CannotDetermineSpecification, Unresolvable

    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "#/" + "/".join(str(p) for p in exc.absolute_path)
        raise JsonError(f"The schema itself is invalid at {where}: {exc.message[:300]}") from None
    dialect = schema.get("$schema", "") if isinstance(schema, dict) else ""
    registry = _registry(files, base, dialect)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER, registry=registry)
    count, issues = 0, list[SchemaIssue]()
    try:
        for error in validator.iter_errors(value):
            count += 1
            if len(issues) < max_errors:
                issues.append(
                    SchemaIssue(
                        path=render(list(error.absolute_path)),
                        message=error.message[:300],
                        validator=str(error.validator),
                        schema_path="#/" + "/".join(str(p) for p in error.absolute_schema_path),
                    )
                )
    except (Unresolvable, CannotDetermineSpecification) as exc:
        raise JsonError(
            f"The schema has a $ref that cannot be resolved offline: {str(exc)[:300]}. Remote refs are "
            "never fetched; a ref may point inside the schema or to a JSON file in the workspace"
        ) from None
    return count, issues


def _registry(files: JsonFiles, base: str | None, dialect: str) -> Any:
    """A referencing registry whose only retrieval is a workspace file through the primitive;
    a retrieved schema without `$schema` is read in the main schema's dialect."""
    from urllib.parse import unquote, urlsplit

    from referencing import Registry, Resource
    from referencing.exceptions import NoSuchResource
    from referencing.jsonschema import DRAFT202012, specification_with

    default = specification_with(dialect, default=DRAFT202012) if dialect else DRAFT202012

    def missing(uri: str) -> Exception:
        return NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class

    def retrieve(uri: str) -> Resource[Any]:
        parts = urlsplit(uri)
        if parts.scheme not in ("", "file") or parts.netloc not in ("", "localhost"):
            raise missing(uri)
        path = unquote(parts.path)
        if not path.startswith("/"):
            if base is None:
                raise missing(uri)
            path = base.rsplit("/", 1)[0] + "/" + path
        try:
            contents = files.load(files.resolve(path))
        except (WorkspaceError, JsonError):
            raise missing(uri) from None
        return Resource.from_contents(contents, default_specification=default)

    return Registry(retrieve=retrieve)  # type: ignore[call-arg]


# ---- the MCP face ---------------------------------------------------------------------------

READS = {
    "readOnlyHint": True,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}
WRITES = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": False,
    "openWorldHint": False,
}

PathArg = Annotated[
    str | None,
    Field(
        description="A JSON file in the workspace, relative to the workspace root. Give this or document."
    ),
]
DocumentArg = Annotated[
    str | dict[str, Any] | list[Any] | None,
    Field(description="Inline JSON: JSON text, or an object/array. Give this or path."),
]


@contextmanager
def refusals(tool: str, **params: str | None) -> Iterator[None]:
    """Turn the refusals of the logic into tool errors the model can act on, naming the
    public tool (`json_<tool>`) and, for a path problem, the parameter at fault."""
    try:
        yield
    except WorkspaceError as exc:
        text = str(exc)
        named = [k for k, v in params.items() if v and v in text] or [
            k for k, v in params.items() if v
        ][:1]
        where = f"json_{tool}" + (f", parameter `{named[0]}`" if named else "")
        raise ToolError(f"{text} ({where})") from None
    except JsonError as exc:
        raise ToolError(f"{exc} (json_{tool})") from None
    except OSError as exc:
        raise ToolError(
            f"Cannot access {exc.filename or 'the file'}: {exc.strerror} (json_{tool})"
        ) from None


def _source(files: JsonFiles, path: str | None, document: Any) -> tuple[Any, str, int | None]:
    if (path is None) == (document is None):
        raise JsonError(
            "Give exactly one of path (a JSON file in the workspace) or document (inline JSON)"
        )
    if path is not None:
        real = files.resolve(path)
        return files.load(real), path, files.size(real)
    if isinstance(document, str):
        return parse_text(document, "document"), "document", len(document.encode())
    return document, "document", None


def build_server(deps: Deps) -> FastMCP:
    mcp: FastMCP = FastMCP("json")
    files = JsonFiles(Workspace(lambda: deps.roots))

    @mcp.tool(annotations=READS)
    def query(
        expression: Annotated[
            str,
            Field(description="JSONPath query (RFC 9535), e.g. $.users[?@.age > 30].name or $..id"),
        ],
        path: PathArg = None,
        document: DocumentArg = None,
        result_type: Annotated[
            Literal["value", "path", "all"],
            Field(description="value: matched values; path: their $['a'][0] paths; all: both"),
        ] = "all",
        limit: Annotated[int, Field(ge=1, le=1000, description="Most matches to return")] = 50,
        offset: Annotated[int, Field(ge=0, description="Matches to skip (for paging)")] = 0,
    ) -> QueryResult:
        """Select values from a JSON file or inline document with a JSONPath query (RFC 9535).

        Syntax: `$` root, `.name` or `['any key']`, `[0]`, `[-1]`, `[1:5:2]`, `[*]`, `..name`
        (all descendants), `['a','b']`, `[0,2]`. Filters: `[?@.price < 10 && @.tags]` with
        `== != < <= > >=`, `&& || !`, parentheses, `'text'`, numbers, `true false null`, `$`
        for the root inside a filter, and the functions `length(@.tags) > 2`, `count(@.*)`,
        `value(@..x)`, `match(@.sku, 'A[0-9]+')` (whole string) and `search(@.name, 'pen')`
        (any part). Patterns are I-Regexp (RFC 9485: `[0-9]`, not `\\d`); one that is invalid
        or backtracks catastrophically is an error. The jsonpath_ng forms `=~`, `&`, `=`,
        `` `len` `` are refused with the form to write instead.

        Returns matches in document order with normalized paths ($['a'][0]) that the update
        tool accepts. Output is capped (about 60k characters and `limit` matches); when
        `truncated`, call again with `offset=next_offset`. Large files are parsed once and
        cached.
        """
        with refusals("query", path=path):
            value, _label, _size = _source(files, path, document)
            return run_query(value, expression, result_type, limit, offset)

    @mcp.tool(annotations=READS)
    def structure(
        path: PathArg = None,
        document: DocumentArg = None,
        max_depth: Annotated[
            int, Field(ge=0, le=20, description="Levels below `at` to describe")
        ] = 4,
        at: Annotated[
            str,
            Field(
                description="JSONPath (RFC 9535) of the part to outline; '$' is the whole document"
            ),
        ] = "$",
        max_nodes: Annotated[
            int, Field(ge=1, le=2000, description="Most outline entries to return")
        ] = 200,
    ) -> StructureResult:
        """Outline a JSON document: keys, types, array lengths and sample values, to a depth.

        Use this first on a large or unknown file instead of reading it: arrays are described
        from up to 20 spread samples, objects with many keys are merged under `[*]`. Paths are
        patterns (`[*]` = every item) that the query tool accepts. Narrow with `at`.
        """
        with refusals("structure", path=path):
            value, label, size = _source(files, path, document)
            root_type, nodes, truncated = run_outline(value, at, max_depth, max_nodes)
        hint = (
            f"Over {max_nodes} entries; lower max_depth or outline a part with at=…"
            if truncated
            else None
        )
        return StructureResult(
            source=label,
            root_type=root_type,
            bytes=size,
            nodes=nodes,
            truncated=truncated,
            hint=hint,
        )

    @mcp.tool(annotations=READS)
    def validate(
        path: PathArg = None,
        document: DocumentArg = None,
        schema: Annotated[
            str | dict[str, Any] | bool | None,
            Field(description="A JSON Schema (object or JSON text); omit to check syntax only"),
        ] = None,
        schema_path: Annotated[
            str | None, Field(description="A JSON Schema file in the workspace")
        ] = None,
        max_errors: Annotated[
            int, Field(ge=1, le=500, description="Most schema errors to list")
        ] = 50,
    ) -> ValidateResult:
        """Check that a JSON file or text parses, and that it matches a JSON Schema if given.

        A syntax error comes back with line, column and the text around it. Schema errors
        carry the path of each failing value ($['items'][3]['price']) and the failed keyword.
        `$ref`s resolve inside the schema, or to JSON files inside the workspace (relative to
        schema_path); remote URLs are never fetched and files outside are never read.
        """
        with refusals("validate", path=path, schema_path=schema_path):
            try:
                value, _label, _size = _source(files, path, document)
            except JsonSyntaxError as exc:
                issue = SyntaxIssue(
                    message=exc.reason, line=exc.line, column=exc.column, context=exc.context
                )
                return ValidateResult(valid=False, syntax_error=issue)
            loaded = load_schema(schema, schema_path, files)
            if loaded is None:
                return ValidateResult(valid=True)
            base = files.resolve(schema_path) if schema_path is not None else None
            count, issues = schema_issues(value, loaded, max_errors, files, base)
        return ValidateResult(
            valid=count == 0,
            schema_checked=True,
            error_count=count,
            errors=issues,
            truncated=count > len(issues),
        )

    if deps.settings.mcp.read_only:
        return mcp

    @mcp.tool(annotations=WRITES)
    def update(
        path: Annotated[
            str, Field(description="The JSON file to change, relative to the workspace root")
        ],
        expression: Annotated[
            str,
            Field(
                description="JSONPath (RFC 9535) of what to change, e.g. $.version or $.items[?@.id == 3].done"
            ),
        ],
        operation: Annotated[
            Literal["set", "delete", "append"],
            Field(
                description="set: replace (or add a missing key); delete: remove; append: add to an array"
            ),
        ] = "set",
        value: Annotated[
            Any,
            Field(description="The JSON value to set or append (objects as objects, not as text)"),
        ] = None,
        dry_run: Annotated[
            bool, Field(description="Report the changes without writing the file")
        ] = False,
    ) -> UpdateResult:
        """Change a JSON file in the workspace at every location a JSONPath query selects.

        `expression` is RFC 9535 JSONPath, as in the query tool (a normalized path such as
        $['items'][3]['done'] from a query selects exactly one location). `set` replaces
        matched values, or adds the key when `$.parent.key` is missing; `delete` removes
        matches (array items from the highest index down, so each match is the item the
        query meant); `append` adds `value` to matched arrays. The file is rewritten
        atomically, keeping key order and its indentation style. Returns each change with
        before/after previews; use dry_run=true to preview.
        """
        with refusals("update", path=path):
            real = files.resolve(path)
            with files.rewriting(real) as (text, doc):
                new_doc, changes = apply_update(doc, expression, operation, value)
                written = bool(changes) and not dry_run
                if written:
                    files.write(real, Style.detect(text).dump(new_doc), new_doc)
        shown = changes[:50]
        hint = None if changes else "The expression matched nothing; nothing was written"
        return UpdateResult(
            path=path,
            operation=operation,
            dry_run=dry_run,
            written=written,
            changed=len(changes),
            changes=shown,
            truncated=len(shown) < len(changes),
            hint=hint,
        )

    return mcp
