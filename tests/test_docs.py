"""The README and mcp.json cannot drift from the code."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel

from kimi_mcp.cli import build_parser, main
from kimi_mcp.config import ModelSettings, ProviderSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOOLS = sorted(
    [f"fs_{n}" for n in (
        "list_allowed_directories read_file read_multiple_files read_media_file write_file "
        "edit_file edit_lines extract_lines create_directory list_directory directory_tree "
        "get_file_info copy move delete batch search_files search_content find_large_files "
        "disk_usage compress extract_archive sync_directories hash_file diff_files").split()]
    + [f"json_{n}" for n in "query structure update validate".split()]
    + [f"memory_{n}" for n in "store recall get update delete consolidate".split()]
    + [f"tasks_{n}" for n in "parse_prd list next add update expand analyze".split()]
    + ["thinking_sequential"]
)


def _keys(model: type[BaseModel], prefix: str) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += _keys(annotation, key + ".")
        else:
            out.append(key)
    return out


def test_every_setting_is_documented_in_the_readme() -> None:
    keys = [k for k in _keys(Settings, "") if not k.startswith(("providers", "routing.aliases"))]
    keys += [f"providers.<name>.{k}" for k in _keys(ProviderSettings, "") if k != "models"]
    keys += [f"providers.<name>.models.<id>.{k}" for k in _keys(ModelSettings, "")]
    keys += ["routing.aliases.<name>.strategy", "routing.aliases.<name>.models"]
    missing = [k for k in keys if f"`{k}`" not in README]
    assert not missing, f"settings missing from the README's table: {missing}"


def test_the_readme_documents_exactly_the_43_tools() -> None:
    assert len(TOOLS) == 43
    documented = set(re.findall(r"`((?:fs|json|memory|tasks|thinking)_[a-z_]+)`", README))
    documented -= {k.rsplit(".", 1)[-1] for k in _keys(Settings, "")}  # e.g. `memory_tags`
    assert set(TOOLS) <= documented
    assert not documented - set(TOOLS), f"the README names tools that do not exist: {documented - set(TOOLS)}"


def test_every_proxy_endpoint_is_documented() -> None:
    from kimi_mcp.proxy.routes import PATHS

    for path in PATHS:
        assert f"`/v1{path}`" in README or f"/v1{path}`" in README, f"/v1{path} is not in the README"


def test_every_command_is_documented() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"kimi-mcp {name}" in README, f"`kimi-mcp {name}` is not in the README"


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    install, test = (b.strip() for b in blocks)
    assert "kimi-mcp serve" in install and "\n" not in install
    assert "[dev]" in test and "\n" not in test
    assert test in (ROOT / ".ci" / "run").read_text()


def test_mcp_json_launches_a_real_entry_point() -> None:
    config = json.loads((ROOT / "mcp.json").read_text())
    server = config["mcpServers"]["kimi-mcp"]
    assert shutil.which(server["command"]), f"{server['command']} is not on PATH"
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert server["args"][0] in sub.choices  # type: ignore[operator]
    assert server["args"][0] == "stdio"


def _toml_snippets() -> list[tuple[str, str]]:
    """Each ```toml block of the README that configures kimi-mcp, with its section's heading."""
    found = []
    for heading, body in re.findall(r"^(#+ [^\n]+)$|```toml\n(.*?)```", README, re.M | re.S):
        if heading:
            section = heading
        elif not body.startswith("# ~/.codex/"):  # Codex's own file, not ours
            found.append((section, body))
    return found


# the Teams example needs its secrets on purpose: a database password, a Redis password and the
# token that guards a public bind have no safe default
TEAM_SECRETS = {"KIMI_DB_PASSWORD": "pw", "KIMI_REDIS_PASSWORD": "pw", "KIMI_MCP_TOKEN": "tok"}


@pytest.mark.parametrize("section,snippet", _toml_snippets())
def test_every_readme_config_snippet_passes_config_check_in_an_empty_environment(
        section: str, snippet: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in list(os.environ):  # as Codex starts an MCP server: none of the shell's variables
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("KIMI_MCP_DATA_DIR", str(tmp_path / "data"))
    if section.startswith("## Teams"):
        for name, value in TEAM_SECRETS.items():
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snippet.toml").write_text(snippet, encoding="utf-8")
    code = main(["config", "check", "--config", "snippet.toml"])
    err = capsys.readouterr().err
    assert code == 0, f"{section}: {err}"
    assert not err, f"{section}: {err}"  # not even a warning


def test_the_readmes_continue_block_has_the_header_init_writes() -> None:
    import yaml

    from kimi_mcp.clients import merge_continue_block

    section = README.split("## Registering the MCP server", 1)[1].split("\n## ", 1)[0]
    block = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", section, re.S)[0])
    written = merge_continue_block(None, "mcpServers", [])
    assert {k: block[k] for k in ("name", "version", "schema")} == \
        {k: written[k] for k in ("name", "version", "schema")}
