"""Tool outputs through a conversation: compressed at first sight, masked by the cost model.

Per conversation (a session id and its system and first user messages) the stage remembers
each tool output it has seen: its kind, its first-sight form, whether it was masked. Later
requests reuse that (the same bytes every time) and only new outputs cost work. A mask, once
made, stays: the prompt changes once, never back. What is remembered is bounded in bytes;
a conversation forgotten is rebuilt from its messages (the first-sight forms come out the same).

An output stays whole while it is recent: `keep_read_turns` turns for file reads and edits,
`keep_output_turns` for the other kinds. After that, outputs of `mask_threshold_tokens`+ tokens
are masked in the group the cost model (`costmodel.choose`) finds worth its cache misses. The
long arguments of tool calls older than `keep_last_turns` (a file an agent wrote through a
heredoc, a script it ran) are masked the same way, inside the arguments' JSON (kind `call`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kimi_mcp import tokens
from kimi_mcp.context import costmodel
from kimi_mcp.context.caches import ByteLRU
from kimi_mcp.context.conversation import TOOL_ROLES, Message
from kimi_mcp.context.firstsight import Form, compressed_id, first_sight
from kimi_mcp.context.kinds import WORKING_KINDS, classify, tool_kind
from kimi_mcp.context.repeats import RepeatIndex
from kimi_mcp.context.sanitizer import (
    Masked,
    has_masked_argument,
    maskable_text,
    masked_arguments,
    masked_id,
    placeholder,
    placeholder_id,
)

Slot = tuple[int, int]  # (message index, tool call number; -1: the message's content)
MIN_ARGUMENT_CHARS = 600


@dataclass
class Output:
    key: tuple[int, int]  # hash and length of the original text (never the text: memory)
    id: str
    kind: str
    tokens: int  # of the original text
    form: Form | None  # its first-sight form, if any
    placeholder: str | None = None  # computed once it is a candidate for masking
    placeholder_tokens: int = 0
    masked: bool = False  # set once the cost model masked it: it stays masked
    sent: str = "original"  # what the previous request carried: original | form | mask
    own: bool = False  # the text is a form kimi-mcp wrote: never changed again
    stored: bool = False  # its original (and those its form refers to) is in the memory engine

    def sent_tokens(self, what: str | None = None) -> int:
        what = what or self.sent
        if what == "mask" and self.placeholder is not None:
            return self.placeholder_tokens
        if what == "form" and self.form is not None:
            return self.form.tokens
        return self.tokens

    def mask_text(self, original: str) -> str:
        if self.placeholder is None:
            if self.kind == "call":
                self.placeholder = masked_arguments(original, self.id, self.tokens) or original
            else:
                self.placeholder = placeholder(original, self.id, self.tokens)
            self.placeholder_tokens = tokens.count_text(self.placeholder)
        return self.placeholder

    @property
    def size(self) -> int:
        return 240 + (len(self.form.text) if self.form else 0) + len(self.placeholder or "")


@dataclass
class Conversation:
    outputs: list[Output] = field(default_factory=list)
    index: RepeatIndex = field(default_factory=RepeatIndex)

    @property
    def size(self) -> int:
        return 400 + sum(o.size for o in self.outputs) + self.index.size


@dataclass(frozen=True)
class Policy:
    first_sight: bool
    masking: bool
    threshold: int  # mask_threshold_tokens
    keep_working: int  # turns a read or edit stays whole
    keep_other: int  # turns any other output stays whole
    ratio: float  # cached price over input price
    keep_calls: int = 5  # turns an assistant message (its calls' arguments) stays whole
    forced: bool = False  # the last resort: a body with kimi-mcp's forms is worked on too


@dataclass
class Change:
    slot: Slot
    output: Output
    what: str  # form | mask
    original: str

    @property
    def position(self) -> int:
        return self.slot[0]

    @property
    def text(self) -> str:
        if self.what == "mask":
            return self.output.mask_text(self.original)
        return self.output.form.text if self.output.form else self.original

    @property
    def item(self) -> Masked:
        return Masked(self.output.id, self.original, self.text, self.output.tokens)


@dataclass
class Plan:
    """What one request's tool outputs become; nothing is changed until `commit`."""

    conversation: Conversation
    changes: list[Change]
    store: list[Masked]  # originals that must be stored first (changed outputs and those referred to)
    cached_end: int
    rebilled: int = 0
    new_masks: set[str] = field(default_factory=set)
    passthrough: bool = False
    sent: list[tuple[Slot, Output]] = field(default_factory=list)  # every slot, after commit


class ToolOutputs:
    def __init__(self, max_bytes: int = 48 * 1024 * 1024) -> None:
        self.conversations: ByteLRU[Any, Conversation] = ByteLRU(max_bytes)

    def plan(self, msgs: Sequence[Message], key: Any, policy: Policy) -> Plan:
        conv = self.conversations.get(key) or Conversation()
        slots, texts = _slots(msgs)
        starts = [i for i, m in enumerate(msgs) if m.get("role") == "assistant"]
        cached_end = starts[-1] if starts else len(msgs)
        for number, slot in enumerate(slots):
            text = texts[slot]
            found = conv.outputs[number] if number < len(conv.outputs) else None
            if found is None or found.key != (hash(text), len(text)):
                del conv.outputs[number:]
                conv.index.truncate(number)
                found = self._new(msgs, slot, text, conv.index)
                conv.outputs.append(found)
            if found.own and not policy.forced:
                # this body went through kimi-mcp's stages before: it is passed on as it is
                return Plan(Conversation(), [], [], cached_end, passthrough=True)
        del conv.outputs[len(slots):]
        conv.index.truncate(len(slots))
        plan = Plan(conv, [], [], cached_end)
        plan.sent = list(zip(slots, conv.outputs, strict=True))
        if policy.masking:
            self._choose_masks(msgs, slots, starts, texts, plan, policy)
        by_id = {o.id: (o, texts[s]) for o, s in zip(conv.outputs, slots, strict=True)}
        for out, slot in zip(conv.outputs, slots, strict=True):
            what = "mask" if out.masked or out.id in plan.new_masks else (
                "form" if out.form is not None and policy.first_sight else "original")
            if what == "original":
                continue
            plan.changes.append(Change(slot, out, what, texts[slot]))
            if out.stored:
                continue
            refers = out.form.refers if what == "form" and out.form else frozenset()
            plan.store += [Masked(r, by_id[r][1], "", by_id[r][0].tokens) for r in refers if r in by_id]
            plan.store.append(plan.changes[-1].item)
        return plan

    def _new(self, msgs: Sequence[Message], slot: Slot, text: str, index: RepeatIndex) -> Output:
        mid = masked_id(text)
        size = tokens.count_text(text)
        own = _is_ours(text)
        if slot[1] >= 0:
            index.add((), mid)
            return Output((hash(text), len(text)), mid, "call", size, None, own=own)
        name, arguments = _call_of(msgs, slot[0])
        known = tool_kind(name, arguments)
        kind = known if known in WORKING_KINDS else classify(text, name, arguments)
        form = None if own else first_sight(kind, text, mid, size, None if kind in WORKING_KINDS else index)
        index.add(text.split("\n") if kind not in WORKING_KINDS else (), mid)  # reads are never repeats
        return Output((hash(text), len(text)), mid, kind, size, form, own=own)

    def _choose_masks(
        self, msgs: Sequence[Message], slots: list[Slot], starts: list[int], texts: dict[Slot, str],
        plan: Plan, policy: Policy,
    ) -> None:
        remaining = costmodel.remaining_turns(len(starts))
        after = _assistants_after(len(msgs), starts)
        candidates: list[costmodel.Candidate] = []
        for out, slot in zip(plan.conversation.outputs, slots, strict=True):
            i = slot[0]
            if out.kind == "call":  # the assistant message itself: outside the last turns only
                keep, age = policy.keep_calls, after[i]
            else:
                keep = policy.keep_working if out.kind in WORKING_KINDS else policy.keep_other
                age = after[i]
            current = out.sent_tokens("form" if out.form and policy.first_sight else "original")
            if out.masked or out.own or age < keep or current < policy.threshold:
                continue
            out.mask_text(texts[slot])
            saved = current - out.placeholder_tokens
            if saved > 0:
                candidates.append(costmodel.Candidate(i, saved))
        if not candidates:
            return
        sizes = self._previous_sizes(msgs, slots, plan.conversation)
        choice = costmodel.choose(candidates, sizes, plan.cached_end, policy.ratio, remaining)
        if choice is None:
            return
        plan.rebilled = choice.rebilled
        chosen = {c.position for c in candidates if c.position >= choice.start}
        for out, slot in zip(plan.conversation.outputs, slots, strict=True):
            if slot[0] in chosen and not out.masked and out.placeholder is not None:
                plan.new_masks.add(out.id)

    def _previous_sizes(self, msgs: Sequence[Message], slots: list[Slot], conv: Conversation) -> list[int]:
        sizes = [0] * len(msgs)
        outputs: dict[int, list[Output]] = {}
        for slot, out in zip(slots, conv.outputs, strict=True):
            outputs.setdefault(slot[0], []).append(out)
        for i, m in enumerate(msgs):
            found = outputs.get(i)
            if found is None:
                sizes[i] = tokens.count_message(m)
            elif msgs[i].get("role") == "assistant":
                sizes[i] = tokens.count_message(m) + sum(o.sent_tokens() - o.tokens for o in found)
            else:
                sizes[i] = tokens.PER_MESSAGE + found[0].sent_tokens()
        return sizes

    def commit(self, key: Any, plan: Plan, stored: set[str]) -> list[Change]:
        """Record what was sent (only the changes whose original is stored); the changes made."""
        if plan.passthrough:
            return []
        made = [c for c in plan.changes if c.output.stored or c.output.id in stored]
        for c in made:
            refers = c.output.form.refers if c.what == "form" and c.output.form else frozenset()
            c.output.stored = all(r in stored for r in refers) or c.output.stored
        sent = {id(c.output): c.what for c in made}
        for out in plan.conversation.outputs:
            out.sent = sent.get(id(out), "original")
            if out.sent == "mask":
                out.masked = True
        self.conversations.put(key, plan.conversation, plan.conversation.size)
        return made


def _is_ours(text: str) -> bool:
    if text.startswith("[kimi-mcp "):
        return (placeholder_id(text) or compressed_id(text)) is not None
    return has_masked_argument(text)


def _slots(msgs: Sequence[Message]) -> tuple[list[Slot], dict[Slot, str]]:
    """Every tool output with text, and every long tool-call argument string, in order."""
    slots: list[Slot] = []
    texts: dict[Slot, str] = {}
    for i, m in enumerate(msgs):
        role = m.get("role")
        if role in TOOL_ROLES:
            text = maskable_text(m.get("content"))
            if text is not None:
                slots.append((i, -1))
                texts[(i, -1)] = text
        elif role == "assistant":
            for k, call in enumerate(m.get("tool_calls") or ()):
                function = call.get("function") if isinstance(call, dict) else None
                args = function.get("arguments") if isinstance(function, dict) else None
                if isinstance(args, str) and len(args) >= MIN_ARGUMENT_CHARS and args.startswith("{"):
                    slots.append((i, k))
                    texts[(i, k)] = args
    return slots, texts


def _assistants_after(n: int, starts: list[int]) -> list[int]:
    """For each index, how many assistant messages come after it."""
    after = [0] * n
    count = 0
    j = len(starts) - 1
    for i in range(n - 1, -1, -1):
        while j >= 0 and starts[j] > i:
            count += 1
            j -= 1
        after[i] = count
    return after


def _call_of(msgs: Sequence[Message], i: int) -> tuple[str, Mapping[str, Any]]:
    """The function name and arguments of the call a tool message answers."""
    from kimi_mcp.context.kinds import call_index

    tid = msgs[i].get("tool_call_id")
    for j in range(i - 1, -1, -1):
        if msgs[j].get("role") == "assistant":
            found = call_index([msgs[j]]).get(str(tid))
            if found is not None:
                return found
            break
    name = msgs[i].get("name")
    return (str(name) if name else "", {})
