"""Markdown text of a message, within a bot's size limit, shared by the vendors' formats."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edumon.exporters.notify.model import Message


@dataclass(frozen=True, slots=True)
class MarkdownStyle:
    """How one bot's markdown dialect writes a message.

    Attributes:
        title: the first line from the message title (empty: the bot shows the title itself).
        firing, resolved: the heading of each part, given its count.
        school: a school's heading in a message of several schools.
        budget_bytes: the most UTF-8 bytes the text may take (the bots reject longer ones).
    """

    title: Callable[[str], str]
    firing: Callable[[int], str]
    resolved: Callable[[int], str]
    school: Callable[[str], str]
    budget_bytes: int


def _size(text: str) -> int:
    return len(text.encode())


def render_markdown(message: Message, style: MarkdownStyle) -> str:
    """The message as markdown, its lines cut at the style's byte budget with a count of the rest.

    Returns:
        Text whose UTF-8 encoding fits ``style.budget_bytes``.
    """
    blocks: list[str] = []
    head = style.title(message.title)
    if head:
        blocks.append(head)
    several = len(message.sections) > 1
    total = sum(len(s.firing) + len(s.resolved) for s in message.sections)
    shown = 0
    # Reserve room for the closing note, so that the cut never overflows the budget.
    reserve = _size(f"\n\n…… 另有 {total} 条未列出，详见 edumon 状态页")
    used = _size("\n\n".join(blocks))
    full = False
    for section in message.sections:
        if full:
            break
        parts: list[tuple[str, list[str]]] = []
        if section.firing:
            parts.append((style.firing(len(section.firing)), [x.text for x in section.firing]))
        if section.resolved:
            parts.append(
                (style.resolved(len(section.resolved)), [x.text for x in section.resolved])
            )
        if several:
            heading = style.school(f"{section.school_name}（{section.school}）")
            if used + _size(heading) + 2 + reserve > style.budget_bytes:
                break
            blocks.append(heading)
            used += _size(heading) + 2
        for header, lines in parts:
            block = [header]
            cost = _size(header) + 2
            for text in lines:
                item = f"- {text}"
                if used + cost + _size(item) + 1 + reserve > style.budget_bytes:
                    full = True
                    break
                block.append(item)
                cost += _size(item) + 1
                shown += 1
            if len(block) > 1:
                blocks.append("\n".join(block))
                used += cost
            if full:
                break
    if shown < total:
        blocks.append(f"…… 另有 {total - shown} 条未列出，详见 edumon 状态页")
    return "\n\n".join(blocks)
