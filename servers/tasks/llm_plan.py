"""Planning with a model (when `[tasks] llm_model` is set): prompts, schemas, validation.

Each function returns the same shapes as the deterministic planner, or raises `LlmError`;
the tools catch that and fall back with a warning.
"""

from __future__ import annotations

import json
from typing import Any

from kimi_mcp.llm import Completions, LlmError

from .planner import Complexity, Planned

_PRIORITY = {"type": "string", "enum": ["low", "medium", "high", "critical"]}
_TASK = {
    "type": "object",
    "required": ["title", "description"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "details": {"type": "string"},
        "testStrategy": {"type": "string"},
        "priority": _PRIORITY,
        "dependencies": {"type": "array", "items": {"type": "integer", "minimum": 1}},
    },
}
PRD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tasks"],
    "properties": {"tasks": {"type": "array", "minItems": 1, "items": _TASK}},
}
EXPAND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["subtasks"],
    "properties": {"subtasks": {"type": "array", "minItems": 1, "items": _TASK}},
}
ANALYZE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tasks"],
    "properties": {"tasks": {"type": "array", "items": {
        "type": "object",
        "required": ["id", "score", "recommended_subtasks", "reason"],
        "properties": {
            "id": {"type": "integer"},
            "score": {"type": "integer", "minimum": 1, "maximum": 10},
            "recommended_subtasks": {"type": "integer", "minimum": 0, "maximum": 20},
            "reason": {"type": "string"},
        },
    }}},
}

_SYSTEM = (
    "You plan software work as a task board. Answer with one JSON object only, matching the "
    "schema given. Dependencies are 1-based positions in the list you return and must point "
    "to earlier items."
)


def _messages(instruction: str, schema: dict[str, Any], content: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": f"{_SYSTEM}\nSchema: {json.dumps(schema)}"},
        {"role": "user", "content": f"{instruction}\n\n{content}"},
    ]


def _planned(items: list[dict[str, Any]]) -> list[Planned]:
    plan = []
    for position, item in enumerate(items):
        deps = [d - 1 for d in item.get("dependencies", []) if 1 <= d <= position]
        plan.append(Planned(
            title=item["title"].strip(),
            description=item.get("description", "").strip(),
            details=item.get("details", "").strip(),
            test_strategy=item.get("testStrategy", "").strip(),
            priority=item.get("priority", "medium"),
            depends_on=sorted(set(deps)),
        ))
    return plan


async def parse_prd(completions: Completions, model: str, text: str,
                    num_tasks: int | None) -> list[Planned]:
    count = f"about {num_tasks}" if num_tasks else "as many as the PRD needs (usually 5-15)"
    answer = await completions.complete_json(model, _messages(
        f"Turn this PRD into {count} implementation tasks in a sensible order, each with "
        "details and a test strategy taken from its acceptance criteria.", PRD_SCHEMA, text),
        PRD_SCHEMA, purpose="tasks_parse_prd")
    return _planned(answer["tasks"])


async def expand(completions: Completions, model: str, task: dict[str, Any],
                 count: int | None) -> list[Planned]:
    wanted = f"exactly {count}" if count else "3 to 7"
    brief = {k: task.get(k, "") for k in ("title", "description", "details", "testStrategy")}
    answer = await completions.complete_json(model, _messages(
        f"Split this task into {wanted} concrete subtasks.", EXPAND_SCHEMA,
        json.dumps(brief, ensure_ascii=False)), EXPAND_SCHEMA, purpose="tasks_expand")
    plan = _planned(answer["subtasks"])
    if count and len(plan) != count:
        raise LlmError(f"the model returned {len(plan)} subtasks instead of {count}")
    return plan


async def analyze(completions: Completions, model: str,
                  tasks: list[dict[str, Any]]) -> dict[int, Complexity]:
    brief = [{k: t.get(k, "") for k in ("id", "title", "description", "details")} for t in tasks]
    answer = await completions.complete_json(model, _messages(
        "Score each task's implementation complexity from 1 (trivial) to 10 (very hard), "
        "recommend how many subtasks it should be split into (0 if none), and say why in "
        "one sentence.", ANALYZE_SCHEMA, json.dumps(brief, ensure_ascii=False)),
        ANALYZE_SCHEMA, purpose="tasks_analyze")
    scores = {int(a["id"]): Complexity(a["score"], a["recommended_subtasks"], a["reason"])
              for a in answer["tasks"]}
    missing = [t["id"] for t in tasks if int(t["id"]) not in scores]
    if missing:
        raise LlmError(f"the model did not score tasks {missing}")
    return scores
