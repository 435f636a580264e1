"""The house rules that keep the code base navigable: imports flow one way, modules stay small."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = {"config", "tokens", "catalog", "ledger", "memory", "errors", "deps", "llm", "upstream",
        "workspace", "workspace_tree", "workspace_errors"}
FACES = {"proxy", "context", "dashboard", "logwatch", "server", "app", "cli", "commands",
         "mcp_arguments", "mcp_calls",
         "daemon", "clients", "runtime", "auth", "metrics", "httputil", "stats"}
MAX_LINES = 800


def _sources() -> list[tuple[str, Path]]:
    out = []
    for base, package in ((ROOT / "kimi_mcp", "kimi_mcp"), (ROOT / "servers", "kimi_mcp.servers")):
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out.append((".".join([package, *parts]), path))
    return out


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _area(module: str) -> str:
    parts = module.split(".")
    if parts[:2] == ["kimi_mcp", "servers"]:
        return "servers." + parts[2] if len(parts) > 2 else "servers"
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("module,path", _sources(), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_imports_flow_one_way(module: str, path: Path) -> None:
    area = _area(module)
    for target in _imports(path):
        if not target.startswith("kimi_mcp."):
            if area in CORE or area.startswith("servers"):
                assert not target.startswith("starlette"), f"{module} (core) imports {target}"
            continue
        to = _area(target)
        if area in CORE:
            assert to in CORE or to == "", f"{module} (core) imports the face {target}"
        if area.startswith("servers"):
            assert to in CORE or to in ("", area) or to == "servers", \
                f"{module} imports {target}: servers import only the core, never each other"


@pytest.mark.parametrize("module,path", _sources(), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_modules_stay_under_the_line_ceiling(module: str, path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it (ceiling {MAX_LINES})"


def test_every_package_directory_ships_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    for base, package in ((ROOT / "kimi_mcp", "kimi_mcp"), (ROOT / "servers", "kimi_mcp.servers")):
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            name = ".".join([package, *rel])
            assert name in listed, f"{name} is missing from [tool.setuptools] packages"


def test_importing_the_package_has_no_side_effects(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import threading, kimi_mcp.app, kimi_mcp.server, kimi_mcp.cli, kimi_mcp.ledger;"
            "assert threading.active_count() == 1, threading.enumerate()")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"KIMI_MCP_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "d").exists()


# ---- only kimi_mcp/workspace.py opens workspace paths ---------------------------------------

# calls that open, list, stat, create, rename, copy or delete by path string
_FS_FUNCTIONS = {
    "os": {"open", "fdopen", "scandir", "listdir", "walk", "fwalk", "stat", "lstat", "rename",
           "replace", "renames", "remove", "unlink", "rmdir", "removedirs", "mkdir", "makedirs",
           "link", "symlink", "readlink", "utime", "chmod", "chown", "truncate", "mkfifo",
           "mknod", "access"},
    "os.path": {"exists", "lexists", "isfile", "isdir", "islink", "getsize", "getmtime",
                "getatime", "getctime", "realpath", "samefile"},
    "io": {"open"},
    "shutil": None,  # every function
    "tempfile": None,
    "glob": None,
}
# pathlib-style methods that touch the file system (no method of ours uses these names)
# (str.replace and Workspace.readlink share names with Path methods, so those two are left to
# the os.* list above)
_FS_METHODS = {"read_text", "write_text", "read_bytes", "write_bytes", "iterdir", "rglob",
               "touch", "mkdir", "unlink", "rmdir", "symlink_to", "hardlink_to", "chmod",
               "lchmod", "is_fifo", "is_socket"}
# `.open(...)` is allowed only on archive objects that were handed an open file
_OPEN_RECEIVERS = {"archive", "zipfile", "tarfile"}
# Data-dir persistence that is not a workspace path, allowed by name: (module, call). Empty:
# thinking and memory persist through the ledger's writer, not through files of their own.
_ALLOWED: set[tuple[str, str]] = set()


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _file_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = _dotted(func)
        if isinstance(func, ast.Name) and func.id == "open":
            found.append(f"line {node.lineno}: open(...)")
            continue
        if not isinstance(func, ast.Attribute):
            continue
        owner, attr = _dotted(func.value), func.attr
        banned = _FS_FUNCTIONS.get(owner, set())
        if owner in _FS_FUNCTIONS and (banned is None or attr in banned):
            found.append(f"line {node.lineno}: {name}(...)")
        elif attr in _FS_METHODS:
            found.append(f"line {node.lineno}: .{attr}(...)")
        elif attr == "open" and owner not in _OPEN_RECEIVERS:
            found.append(f"line {node.lineno}: {name}(...)")
        elif owner == "tarfile" and attr == "open" and not any(
            k.arg == "fileobj" for k in node.keywords
        ):
            found.append(f"line {node.lineno}: tarfile.open without fileobj=")
    return found


@pytest.mark.parametrize(
    "path", sorted((ROOT / "servers").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_tool_families_touch_files_only_through_the_workspace_primitive(path: Path) -> None:
    module = str(path.relative_to(ROOT))
    calls = [c for c in _file_calls(path) if (module, c.split(": ", 1)[1]) not in _ALLOWED]
    assert not calls, (
        f"{module} touches the file system directly ({'; '.join(calls)}); go through "
        "kimi_mcp.workspace.Workspace, which enforces containment at use time"
    )


def test_the_file_call_check_sees_each_kind_of_direct_access(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, shutil, tempfile\nfrom pathlib import Path\n"
        "open('x')\nos.open('x', 0)\nos.replace('a', 'b')\nshutil.copytree('a', 'b')\n"
        "Path('x').read_text()\nPath('x').write_bytes(b'')\ntempfile.mkstemp()\n"
        "os.path.isdir('x')\nPath('x').open()\n",
        encoding="utf-8",
    )
    assert len(_file_calls(sample)) == 9


# ---- the service graph ------------------------------------------------------------------------

HTTP_CLIENT_CALLS = {("httpx", "AsyncClient"), ("httpx", "Client"), ("httpx", "get"),
                     ("httpx", "post"), ("httpx", "stream"), ("httpx", "request"),
                     ("aiohttp", "ClientSession"), ("aiohttp", "request"),
                     ("urllib.request", "urlopen"), ("requests", "get"), ("requests", "post")}
# talk only to kimi-mcp's own local server (`status`, `start`), never to a provider
OWN_SERVER_CLIENTS = {"kimi_mcp.commands", "kimi_mcp.daemon"}


def _calls(path: Path) -> list[tuple[str, str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = ast.unparse(owner) if isinstance(owner, ast.Name | ast.Attribute) else ""
            found.append((name, node.func.attr, node.lineno))
    return found


@pytest.mark.parametrize("module,path", _sources(), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_only_the_upstream_service_constructs_an_http_client(module: str, path: Path) -> None:
    if module.startswith("kimi_mcp.upstream") or module in OWN_SERVER_CLIENTS:
        return
    for owner, attr, line in _calls(path):
        assert (owner, attr) not in HTTP_CLIENT_CALLS, (
            f"{module}:{line} builds an HTTP client ({owner}.{attr}); send through "
            "kimi_mcp.upstream.Upstream (or deps.completions for the product's own model calls)")


@pytest.mark.parametrize("module,path", _sources(), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_services_are_passed_typed_never_found_in_bags(module: str, path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("extras", "bag", "registry", "services"):
            raise AssertionError(f"{module}:{node.lineno} uses a service bag (.{node.attr}); "
                                 "give the service to what needs it as a typed argument")
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            text = ast.unparse(node.annotation)
            assert not (text.startswith("dict[str, Any]") and node.target.id in
                        ("extras", "bag", "registry", "services")), f"{module}: a service bag"


def _exception_classes() -> list[tuple[str, str, list[str]]]:
    out = []
    for module, path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = [ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception", "NotFound", "Limited", "Locked")) or
                       b in ("Unparseable",) for b in bases):
                    out.append((module, node.name, bases))
    return out


def test_every_exception_is_in_the_one_tree_drawn_in_errors() -> None:
    from kimi_mcp import errors

    drawing = errors.__doc__ or ""
    for module, name, _ in _exception_classes():
        assert f" {name}" in drawing, f"{module}.{name} is not drawn in kimi_mcp/errors.py's tree"
    for module, name, _ in _exception_classes():
        cls = getattr(__import__(module, fromlist=[name]), name)
        assert issubclass(cls, errors.KimiError), f"{module}.{name} is outside KimiError"


# ---- SQL lives with the ledger ----------------------------------------------------------------

DATABASE_LIBRARIES = ("sqlalchemy", "sqlmodel", "sqlite3", "psycopg")
# The memory store keeps its own tables (memories, vectors) in the ledger's database and writes
# them through the ledger's transactions; its data access stays beside the types it returns.
MEMORY_TABLES = {"kimi_mcp.memory.records", "kimi_mcp.memory.vecrows",
                 "kimi_mcp.memory.consolidate", "kimi_mcp.memory.failures"}


@pytest.mark.parametrize("module,path", _sources(), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_sql_is_written_only_in_the_ledger(module: str, path: Path) -> None:
    if module.startswith("kimi_mcp.ledger") or module in MEMORY_TABLES:
        return
    for target in _imports(path):
        assert not target.startswith(DATABASE_LIBRARIES), (
            f"{module} imports {target}: put the query in kimi_mcp/ledger/ as a named query "
            "returning typed rows, and call it")


# ---- one Redis client ---------------------------------------------------------------------------

@pytest.mark.parametrize("module,path", _sources(), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_only_the_cluster_module_uses_redis_and_only_the_app_connects_it(module: str,
                                                                        path: Path) -> None:
    if module != "kimi_mcp.proxy.cluster":
        for target in _imports(path):
            assert not target.startswith("redis"), (
                f"{module} imports {target}: limits and breakers reach Redis through "
                "kimi_mcp.proxy.cluster, given the client create_app built")
    if module != "kimi_mcp.app":
        for owner, attr, line in _calls(path):
            assert (owner, attr) != ("cluster", "connect"), (
                f"{module}:{line} connects to Redis; only create_app builds the one client")
