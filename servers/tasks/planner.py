"""Planning without a model: PRD → tasks, task → subtasks, task → complexity score.

Everything here is deterministic: the same text always gives the same plan.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .markdown import Item, Section, clean, list_items, parse, sentences

_SKIP = re.compile(
    r"\b(overview|introduction|background|summary|purpose|context|problem|goals?|non-goals?|"
    r"out of scope|glossary|references?|appendix|table of contents|contents|open questions|"
    r"assumptions|risks?|stakeholders?|personas?|audience|success metrics|metrics|kpis?|"
    r"revision history|changelog|license|faq|notes|timeline|vision|motivation|"
    r"user experience|ux|dependency chain|mitigations?)\b"
)
_LATER = re.compile(r"\b(future|later|enhancements?|nice to have|post-mvp|v2|stretch|someday)\b", re.I)
_ACCEPT = re.compile(
    r"\b(acceptance criteria|acceptance|definition of done|test plan|testing|tests?|"
    r"verification|success criteria|test strategy)\b"
)
_ORDERED_HEADING = re.compile(
    r"\b(implementation plan|plan|roadmap|milestones?|phases?|steps?|sequence|order|rollout)\b"
)
_PHASE = re.compile(r"^(phase|milestone|stage|step|sprint|iteration)\s*[\dIVX]+\b", re.I)
_LABEL = re.compile(
    r"^(acceptance criteria|acceptance|definition of done|tests?|test strategy|verification)\s*:\s*(.*)$",
    re.I,
)
_NUMBERING = re.compile(r"^(\d+(\.\d+)*[.)]?|[IVX]+\.)\s+")
_EXPLICIT_DEP = re.compile(r"\b(?:depends on|requires|after|blocked by)\s+(?:task\s*#?|#)\s*(\d+)", re.I)
_TEST_WORDS = re.compile(r"\b(test|tests|testing|verify|validate|document|documentation|docs)\b", re.I)


@dataclass
class Planned:
    title: str
    description: str = ""
    details: str = ""
    test_strategy: str = ""
    priority: str = "medium"
    depends_on: list[int] = field(default_factory=list)  # indices into the plan


def priority_of(text: str) -> str:
    low = text.lower()
    if re.search(r"\b(p0|critical|blocker|security)\b", low):
        return "critical" if re.search(r"\b(p0|critical|blocker)\b", low) else "high"
    if re.search(r"\b(p1|must|high priority|required)\b", low):
        return "high"
    if re.search(r"\b(p3|could|nice to have|optional|low priority|stretch)\b", low):
        return "low"
    return "medium"


def _title(text: str) -> tuple[str, str]:
    """A short title and a description from one requirement's text.

    "Search: full-text over titles" → ("Search", "Full-text over titles"); a long sentence
    keeps its first clause as the title and the whole sentence as the description.
    """
    text = _NUMBERING.sub("", clean(text)).strip()
    parts = re.split(r"(?<=[.!?])\s|\s[—–]\s|:\s", text, maxsplit=1)
    head = parts[0].rstrip(".")
    rest = parts[1].strip() if len(parts) > 1 else ""
    if len(head) > 80:
        head = head[:77].rsplit(" ", 1)[0] + "…"
    if rest and not parts[0].endswith((".", "!", "?")):
        description = rest[:1].upper() + rest[1:]
    else:
        description = text
    return head or text[:80], description


def _heading_kind(title: str) -> str:
    low = _NUMBERING.sub("", title.lower())
    if _PHASE.match(low):
        return "phase"
    if _ACCEPT.search(low) and not re.search(r"\b(requirements?|features?)\b", low):
        return "accept"
    if _SKIP.search(low) and not re.search(r"\b(requirements?|features?|tasks?)\b", low):
        return "skip"
    return "feature"


class _PrdReader:
    def __init__(self) -> None:
        self.plan: list[Planned] = []

    def read(self, root: Section) -> list[Planned]:
        self._container(root, ordered_heading=True)
        self._explicit_dependencies()
        return self.plan

    def _items_as_tasks(self, items: list[Item], sequential: bool) -> list[int]:
        made: list[int] = []
        for item in items:
            title, desc = _title(item.text)
            details: list[str] = []
            tests: list[str] = []
            for child in item.children:
                label = _LABEL.match(child.text)
                if label:
                    tests.extend([label.group(2)] if label.group(2) else [])
                    tests.extend(c.text for c in child.children)
                else:
                    details.extend(child.flatten())
            task = Planned(title, desc, "\n".join(details), "\n".join(f"- {t}" for t in tests),
                           priority_of(item.text))
            if sequential and made:
                task.depends_on.append(made[-1])
            self.plan.append(task)
            made.append(len(self.plan) - 1)
        return made

    def _container(self, section: Section, *, ordered_heading: bool) -> list[int]:
        """Tasks from a section's lists and subsections; returns their indices."""
        made: list[int] = []
        prev_phase: list[int] = []
        for block in section.blocks:
            if block.items:
                made += self._items_as_tasks(block.items, block.ordered and ordered_heading)
        for child in section.children:
            kind = _heading_kind(child.title)
            if kind in ("skip", "accept"):
                if kind == "accept" and made:
                    self._attach_tests(self.plan[made[-1]], child)
                continue
            phase_made = self._section(child, ordered=kind == "phase" or bool(
                _ORDERED_HEADING.search(child.title.lower())))
            if _LATER.search(child.title):
                for index in phase_made:
                    self.plan[index].priority = "low"
                made += phase_made
                continue
            if kind == "phase":
                for index in phase_made:
                    self.plan[index].depends_on.extend(
                        p for p in prev_phase if p not in self.plan[index].depends_on)
                prev_phase = phase_made or prev_phase
            made += phase_made
        return made

    def _section(self, section: Section, *, ordered: bool) -> list[int]:
        kinds = [_heading_kind(c.title) for c in section.children]
        if any(k in ("feature", "phase") for k in kinds) or _is_requirements(section.title):
            return self._container(section, ordered_heading=ordered)
        if not section.blocks:
            return []
        return [self._feature(section)]

    def _feature(self, section: Section) -> int:
        title, _ = _title(section.title)
        paragraphs: list[str] = []
        details: list[str] = []
        tests: list[str] = []
        label_mode = False
        for block in section.blocks:
            label = _LABEL.match(block.text) if block.text else None
            if label:
                label_mode = True
                if label.group(2):
                    tests.append(label.group(2))
                continue
            if block.items:
                lines = [line for item in block.items for line in item.flatten()]
                (tests if label_mode else details).extend(lines)
                label_mode = False
            else:
                paragraphs.append(block.text)
                label_mode = False
        task = Planned(title, paragraphs[0] if paragraphs else title,
                       "\n".join(paragraphs[1:] + details), "\n".join(tests),
                       priority_of(section.title + " " + " ".join(paragraphs[:1])))
        for child in section.children:
            if _heading_kind(child.title) == "accept":
                self._attach_tests(task, child)
        self.plan.append(task)
        return len(self.plan) - 1

    @staticmethod
    def _attach_tests(task: Planned, section: Section) -> None:
        lines = [b.text for b in section.blocks if b.text]
        lines += [line for b in section.blocks for item in b.items for line in item.flatten()]
        joined = "\n".join(lines)
        task.test_strategy = f"{task.test_strategy}\n{joined}".strip()

    def _explicit_dependencies(self) -> None:
        for index, task in enumerate(self.plan):
            text = f"{task.description}\n{task.details}"
            for match in _EXPLICIT_DEP.finditer(text):
                target = int(match.group(1)) - 1
                if 0 <= target < len(self.plan) and target != index and target not in task.depends_on:
                    task.depends_on.append(target)


def _is_requirements(title: str) -> bool:
    return bool(re.search(
        r"\b(requirements?|features?|user stories|stories|tasks?|deliverables?|scope|work items|"
        r"mvp|plan|roadmap|milestones?|phases?|steps?|capabilities|epics?|enhancements?)\b",
        title.lower()))


def parse_prd(text: str, num_tasks: int | None = None) -> tuple[list[Planned], list[str]]:
    """Tasks from a PRD's structure, and warnings about what could not be honoured."""
    plan = _PrdReader().read(parse(text))
    warnings: list[str] = []
    if not plan:
        paragraphs = [s for s in sentences(text)][:num_tasks or 10]
        plan = [Planned(*_title(p)) for p in paragraphs]
        warnings.append("the PRD has no headings or lists; made one task per sentence")
    if num_tasks and len(plan) > num_tasks:
        plan = _merge(plan, num_tasks)
        warnings.append(f"merged neighbouring requirements to keep to {num_tasks} tasks")
    elif num_tasks and len(plan) < num_tasks:
        warnings.append(f"the PRD's structure yields {len(plan)} tasks, fewer than {num_tasks}")
    return plan, warnings


def _merge(plan: list[Planned], count: int) -> list[Planned]:
    size = len(plan)
    bounds = [round(i * size / count) for i in range(count + 1)]
    group_of = {}
    merged: list[Planned] = []
    for g in range(count):
        members = plan[bounds[g]:bounds[g + 1]]
        for offset in range(bounds[g], bounds[g + 1]):
            group_of[offset] = g
        head = members[0]
        extra = f" (+{len(members) - 1} related)" if len(members) > 1 else ""
        merged.append(Planned(
            head.title + extra,
            "; ".join(m.description for m in members),
            "\n".join(f"- {m.title}" + (f"\n{m.details}" if m.details else "") for m in members),
            "\n".join(m.test_strategy for m in members if m.test_strategy),
            max((m.priority for m in members), key=["low", "medium", "high", "critical"].index),
        ))
    for index, task in enumerate(plan):
        g = group_of[index]
        for dep in task.depends_on:
            if group_of[dep] != g and group_of[dep] not in merged[g].depends_on:
                merged[g].depends_on.append(group_of[dep])
    return merged


# ---- expand ----------------------------------------------------------------------------------


def expand(title: str, description: str, details: str, count: int | None) -> tuple[list[Planned], list[str]]:
    """Subtasks from a task's details: its list items, else its sentences, else a generic split."""
    warnings: list[str] = []
    items, ordered = list_items(details)
    items = [i for i in items if not i.text.rstrip().endswith(":") or i.children]
    plan = [Planned(*_title(i.text), details="\n".join(
        line for c in i.children for line in c.flatten())) for i in items]
    if not plan:
        plan = [Planned(*_title(s)) for s in sentences(details or description)]
        ordered = True
    if len(plan) < 2:
        plan = [Planned(f"Design {title}", f"Decide the approach and interfaces for: {title}."),
                Planned(f"Implement {title}", description or title),
                Planned(f"Test {title}", f"Write tests that show {title} works as described.")]
        ordered = True
        warnings.append("the task's details have no list or sentences to split; used design/implement/test")
    if count and len(plan) > count:
        plan = _merge(plan, count)
    elif count and len(plan) < count:
        warnings.append(f"the details yield {len(plan)} subtasks, fewer than the {count} asked for")
    for index, sub in enumerate(plan):
        if ordered and index:
            sub.depends_on = [index - 1]
        elif _TEST_WORDS.search(sub.title) and index:
            sub.depends_on = [j for j in range(index) if not _TEST_WORDS.search(plan[j].title)]
    return plan, warnings


# ---- complexity ------------------------------------------------------------------------------

_HARD = re.compile(
    r"\b(security|auth\w*|encrypt\w*|migrat\w*|concurren\w*|distributed|real-?time|"
    r"performance|scal\w+|cache|caching|sync\w*|async\w*|database|schema|protocol|parser|"
    r"algorithm|integration|streaming|websocket|oauth|payment\w*|refactor\w*|backward)\b",
    re.I,
)


@dataclass
class Complexity:
    score: int
    recommended_subtasks: int
    reason: str


def complexity(title: str, description: str, details: str, test_strategy: str,
               dependency_count: int) -> Complexity:
    text = " ".join((title, description, details, test_strategy))
    words = len(text.split())
    items, _ = list_items(details)
    hard = sorted({m.group(0).lower() for m in _HARD.finditer(text)})
    raw = (1 + min(3.0, words / 100) + min(2.5, len(items) / 3) + min(2.5, len(hard) * 0.6)
           + min(1.0, dependency_count * 0.25))
    score = max(1, min(10, round(raw)))
    recommended = 0 if score <= 2 else min(10, max(2, len(items), math.ceil(score * 0.6)))
    parts = [f"{words} words", f"{len(items)} listed steps"]
    if hard:
        parts.append("touches " + ", ".join(hard[:5]))
    if dependency_count:
        parts.append(f"{dependency_count} dependenc{'y' if dependency_count == 1 else 'ies'}")
    advice = "small enough to do directly" if recommended == 0 else f"split into about {recommended} subtasks"
    return Complexity(score, recommended, f"{'; '.join(parts)} → {advice}")
