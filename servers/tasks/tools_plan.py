"""The planning tools: tasks_parse_prd, tasks_expand, tasks_analyze (deterministic, or a model when configured)."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import Field

from kimi_mcp.llm import LlmError

from . import graph, llm_plan, ops, planner
from .board import Document, TagData
from .family import ADD, EDIT, REPAIR, Family, TagArg, in_thread, refusals
from .models import AnalyzeResult, ComplexityRow, ExpandResult, IssueRow, PlanResult, row

log = logging.getLogger(__name__)
Method = Literal["deterministic", "llm"]


def _fallback_note(family: Family, exc: Exception) -> str:
    log.warning("tasks: model %s failed, using the deterministic planner: %s", family.model, exc)
    return f"the model {family.model} failed ({exc}); used the deterministic planner instead"


async def _plan_prd(family: Family, text: str, num_tasks: int | None) -> tuple[list[planner.Planned], Method, list[str]]:
    if family.model:
        try:
            plan = await llm_plan.parse_prd(family.completions, family.model, text, num_tasks)
            return plan, "llm", []
        except LlmError as exc:
            note = _fallback_note(family, exc)
            plan, warnings = planner.parse_prd(text, num_tasks)
            return plan, "deterministic", [note, *warnings]
    plan, warnings = planner.parse_prd(text, num_tasks)
    return plan, "deterministic", warnings


async def _plan_subtasks(family: Family, task: dict[str, Any], count: int | None) -> tuple[list[planner.Planned], Method, list[str]]:
    warnings: list[str] = []
    if family.model:
        try:
            plan = await llm_plan.expand(family.completions, family.model, task, count)
            return plan, "llm", []
        except LlmError as exc:
            warnings.append(_fallback_note(family, exc))
    if count is None:
        score = _score(task, len(task.get("dependencies") or []))
        count = score.recommended_subtasks or None
    plan, more = planner.expand(str(task.get("title", "")), str(task.get("description") or ""),
                                str(task.get("details") or ""), count)
    return plan, "deterministic", warnings + more


def _score(task: dict[str, Any], dependency_count: int) -> planner.Complexity:
    return planner.complexity(str(task.get("title", "")), str(task.get("description") or ""),
                              str(task.get("details") or ""), str(task.get("testStrategy") or ""),
                              dependency_count)


def register_plan_tools(mcp: FastMCP, family: Family) -> None:
    _parse_prd_tool(mcp, family)
    _expand_tool(mcp, family)
    _analyze_tool(mcp, family)


def _parse_prd_tool(mcp: FastMCP, family: Family) -> None:
    @mcp.tool(name="parse_prd", annotations=ADD)
    async def parse_prd(
        prd_text: Annotated[str | None, Field(description="the PRD as markdown text")] = None,
        prd_path: Annotated[str | None, Field(description="or a PRD file in the workspace (default .taskmaster/docs/prd.txt)")] = None,
        num_tasks: Annotated[int | None, Field(ge=1, le=100, description="at most this many tasks; neighbouring requirements are merged to fit")] = None,
        append: Annotated[bool, Field(description="add to a tag that already has tasks")] = False,
        tag: TagArg = None,
    ) -> PlanResult:
        """Turn a PRD into pending tasks on the board, with dependencies where order implies them.

        Headings become tasks, numbered and bulleted requirements become tasks or details,
        acceptance criteria become each task's test strategy. Refuses a tag that already has
        tasks unless append=true.
        """
        text = family.prd_text(prd_text, prd_path)
        plan, method, warnings = await _plan_prd(family, text, num_tasks)

        def edit(view: TagData, _doc: Document) -> PlanResult:
            if view.tasks and not append:
                raise ToolError(
                    f"Tag '{view.name}' already has {len(view.tasks)} tasks; pass append=true "
                    "to add to them, or choose another tag."
                )
            keys = ops.apply_plan(view, plan)
            return PlanResult(tag=view.name, created=[row(view.index[k]) for k in keys],
                              total_tasks=len(view.tasks), method=method, warnings=warnings)

        return await in_thread(lambda: family.write(tag, edit, create=True))


def _expand_tool(mcp: FastMCP, family: Family) -> None:
    @mcp.tool(name="expand", annotations=EDIT)
    async def expand(
        id: Annotated[int, Field(description="the task to split")],
        num_subtasks: Annotated[int | None, Field(ge=1, le=20, description="how many subtasks; default from its complexity")] = None,
        force: Annotated[bool, Field(description="replace subtasks it already has")] = False,
        tag: TagArg = None,
    ) -> ExpandResult:
        """Split a task into pending subtasks taken from its details.

        List items in the details become subtasks (ordered lists depend on the previous step).
        Refuses a task that already has subtasks unless force=true.
        """
        view = await in_thread(lambda: family.read(tag))
        with refusals():
            if view is None:
                raise ToolError("No tasks yet: call tasks_parse_prd or tasks_add first.")
            task = view.get(id)
        if task.get("subtasks") and not force:
            raise ToolError(f"Task {id} already has {len(task['subtasks'])} subtasks; pass force=true to replace them.")
        plan, method, warnings = await _plan_subtasks(family, dict(task), num_subtasks)

        def edit(view: TagData, _doc: Document) -> ExpandResult:
            keys = ops.replace_subtasks(view, id, plan, force)
            parent = view.index[str(id)]
            return ExpandResult(tag=view.name, id=id, method=method, warnings=warnings,
                                subtasks=[row(view.index[k], parent=parent) for k in keys])

        return await in_thread(lambda: family.write(tag, edit))


def _analyze_tool(mcp: FastMCP, family: Family) -> None:
    @mcp.tool(name="analyze", annotations=REPAIR)
    async def analyze(
        ids: Annotated[list[int] | None, Field(description="tasks to score; default every task not done or cancelled")] = None,
        fix_dependencies: Annotated[bool, Field(description="also repair dependencies: drop duplicates, missing and self references, break cycles")] = False,
        tag: TagArg = None,
    ) -> AnalyzeResult:
        """Score tasks' complexity 1-10 with a recommended subtask count, and check dependencies.

        Reports missing, self, duplicate and circular dependencies (with the cycle). Only
        fix_dependencies=true writes to the board, and the result lists every change.
        """
        view = await in_thread(lambda: family.read(tag))
        if view is None:
            raise ToolError("No tasks yet: call tasks_parse_prd or tasks_add first.")
        with refusals():
            chosen = [view.get(i) for i in ids] if ids else [
                t for t in view.tasks if t.get("status", "pending") not in ("done", "completed", "cancelled")]
        issues = [IssueRow(**vars(i)) for i in graph.validate(view)]
        scores, method, warnings = await _scores(family, chosen)
        rows = [ComplexityRow(id=int(t["id"]), title=str(t.get("title", "")), score=s.score,
                              recommended_subtasks=s.recommended_subtasks, reason=s.reason)
                for t, s in zip(chosen, scores, strict=True)]
        fixes: list[str] = []
        if fix_dependencies and issues:
            def edit(view: TagData, doc: Document) -> list[str]:
                changes = graph.fix(view)
                doc.changed = bool(changes)
                return changes

            fixes = await in_thread(lambda: family.write(tag, edit))
        return AnalyzeResult(tag=view.name, tasks=rows, dependency_issues=issues, fixes=fixes,
                             method=method, warnings=warnings)


async def _scores(family: Family, tasks: list[dict[str, Any]]) -> tuple[list[planner.Complexity], Method, list[str]]:
    warnings: list[str] = []
    if family.model and tasks:
        try:
            found = await llm_plan.analyze(family.completions, family.model, tasks)
            return [found[int(t["id"])] for t in tasks], "llm", []
        except LlmError as exc:
            warnings.append(_fallback_note(family, exc))
    return [_score(t, len(t.get("dependencies") or [])) for t in tasks], "deterministic", warnings
