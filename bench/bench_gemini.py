"""The Gemini translation's CPU per call, this tree against a baseline git ref, interleaved rounds.

    python bench/bench_gemini.py [--baseline main] [--rounds 15] [--calls 200]

One call is what the proxy does for a Gemini-format provider besides the network:
`to_gemini` (40 tools — a quarter pydantic models with `$defs` — and 61 messages of a tool
loop) and `from_gemini` (a signed text answer). The baseline's `formats/gemini.py` is read
from git (`git show <ref>:...`) and imported beside this tree's; rounds alternate between the
two, so load on the machine hits both alike. Prints the load average with the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from kimi_mcp.proxy.formats import gemini

ROOT = Path(__file__).resolve().parent.parent


class Address(BaseModel):
    street: str
    kind: Literal["home", "work"] = "home"


class Person(BaseModel):
    name: str = Field(title="Name")
    age: int = Field(gt=0)
    email: str | None = None
    addresses: list[Address] = []
    manager: Person | None = None


def workload() -> tuple[dict[str, Any], dict[str, Any]]:
    tools = []
    for i in range(40):
        schema = Person.model_json_schema() if i % 4 == 0 else {
            "type": "object", "additionalProperties": False, "required": ["path"], "properties": {
                "path": {"type": "string", "description": "a path"},
                "limit": {"type": ["integer", "null"], "minimum": 0}, "mode": {"enum": ["a", "b"]}}}
        tools.append({"type": "function", "function": {"name": f"tool_{i}", "description": "does x",
                                                       "parameters": schema}})
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for i in range(20):
        messages += [
            {"role": "user", "content": f"step {i} " * 20},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": f"c{i}", "type": "function", "extra_content": {"google": {"thought_signature": "c2ln"}},
                "function": {"name": "tool_1", "arguments": '{"path": "a/b"}'}}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "x" * 200}]
    answer = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Hello " * 50, "thoughtSignature": "c2ln"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 50, "totalTokenCount": 950}}
    return {"messages": messages, "tools": tools, "max_tokens": 100}, answer


def baseline(ref: str, folder: Path) -> Any:
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:kimi_mcp/proxy/formats/gemini.py"],
                            check=True, capture_output=True, text=True).stdout
    path = folder / "gemini_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("gemini_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_call(module: Any, body: dict[str, Any], answer: dict[str, Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        module.to_gemini(body)
        module.from_gemini(answer, "m")
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="main", help="git ref of the baseline (default main)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    body, answer = workload()
    with tempfile.TemporaryDirectory() as folder:
        modules = {args.baseline: baseline(args.baseline, Path(folder)), "this tree": gemini}
        times: dict[str, list[float]] = {name: [] for name in modules}
        for _ in range(args.rounds):
            for name, module in modules.items():
                times[name].append(per_call(module, body, answer, args.calls))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    sys.stdout.write(f"Gemini translation, 40 tools + 61 messages per call; load average {load}\n")
    for name, values in times.items():
        sys.stdout.write(f"  {name:10s} median {statistics.median(values):8.1f} us/call, "
                         f"best round {min(values):8.1f} us/call\n")


if __name__ == "__main__":
    main()
