"""Convert mini-swe-agent trajectories (`*.traj.json`) into the trace format of the benchmarks.

A trajectory's `messages` already are OpenAI chat messages: an assistant message with `bash`
tool calls, then one `tool` message per call with the command's output. Only the roles
`system`, `user`, `assistant`, `tool` and the fields `content`, `tool_calls` (`id`, `type`,
`function`), `tool_call_id` and `name` are kept; everything the agent logged beside them
(`extra`, raw responses, costs) is dropped. One JSON object per line: `id`, `source`,
`messages`, `exit_status`.

    python bench/convert_mini_swe_agent.py REPO_GIT_DIR COMMIT PREFIX OUT.jsonl

REPO_GIT_DIR is a bare clone of SWE-agent/mini-swe-agent that has COMMIT; PREFIX selects the
trajectories (e.g. `output/deepseek_chat_test_1-100/`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

KEEP = ("role", "content", "tool_calls", "tool_call_id", "name")


def _git(repo: str, *args: str) -> bytes:
    return subprocess.run(["git", "--git-dir", repo, *args], check=True, capture_output=True).stdout


def _call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {"id": call["id"], "type": "function",
            "function": {"name": function.get("name", ""), "arguments": function.get("arguments", "")}}


def _message(m: dict[str, Any]) -> dict[str, Any]:
    out = {k: m[k] for k in KEEP if m.get(k) is not None}
    if out["role"] == "assistant" and out.get("tool_calls"):
        out["tool_calls"] = [_call(c) for c in out["tool_calls"]]
    if "content" not in out:
        out["content"] = ""
    return out


def convert(traj: dict[str, Any], run_id: str, source: str) -> dict[str, Any]:
    messages = [_message(m) for m in traj["messages"] if m.get("role") in ("system", "user", "assistant", "tool")]
    info = traj.get("info") or {}
    return {"id": run_id, "source": source, "messages": messages, "exit_status": info.get("exit_status")}


def main(argv: list[str]) -> None:
    repo, commit, prefix, out = argv
    names = [n for n in _git(repo, "ls-tree", "-r", "--name-only", commit).decode().splitlines()
             if n.startswith(prefix) and n.endswith(".traj.json")]
    lines = []
    missing = 0
    for name in sorted(names):
        try:
            traj = json.loads(_git(repo, "show", f"{commit}:{name}"))
        except subprocess.CalledProcessError:  # a snapshot may list a large blob it does not hold
            missing += 1
            continue
        run_id = Path(name).name.removesuffix(".traj.json")
        lines.append(json.dumps(convert(traj, run_id, f"mini-swe-agent@{commit[:8]}:{name}"),
                                ensure_ascii=False))
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} trajectories -> {out}" + (f" ({missing} listed but absent)" if missing else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
