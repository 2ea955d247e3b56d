"""Logical lines -> a tree of statements (`keyword args... [{ children }]`).

The tree knows nothing about keywords: a statement owns the `{ }` block that follows it
(on the same line or the next, as keepalived allows). Value blocks such as
`virtual_ipaddress { ... }` are statements whose children are the listed items.
"""

from __future__ import annotations

from typing import NamedTuple

from fastvrrp.config.diagnostics import Diagnostics, Location
from fastvrrp.config.lexer import Line, split_words


class Statement(NamedTuple):
    words: tuple[str, ...]
    raw: str  # the line after comments, conditions and substitution (scripts re-split it)
    location: Location
    block: tuple[Statement, ...] | None = None

    @property
    def keyword(self) -> str:
        return self.words[0]

    @property
    def args(self) -> tuple[str, ...]:
        return self.words[1:]


class _Frame:
    """A block being filled: the statement that opened it and the children read so far."""

    __slots__ = ("opener", "children")

    def __init__(self, opener: Statement | None, children: list[Statement]) -> None:
        self.opener = opener
        self.children = children


def build_tree(lines: list[Line], diagnostics: Diagnostics) -> list[Statement]:
    root: list[Statement] = []
    stack: list[_Frame] = [_Frame(None, root)]
    can_open = False  # whether the last child of the current block may take a `{`
    for text, location in lines:
        if text == "{":
            frame = stack[-1]
            if not can_open:
                diagnostics.error(location, "unexpected '{'")
                stack.append(_Frame(Statement(("{",), "{", location), []))  # keeps braces balanced
            else:
                # The block belongs to the statement just read; it is rebuilt when the block closes.
                stack.append(_Frame(frame.children.pop(), []))
            can_open = False
            continue
        if text == "}":
            if len(stack) == 1:
                diagnostics.error(location, "unexpected '}' (no block is open)")
            else:
                frame = stack.pop()
                opener = frame.opener
                assert opener is not None
                if opener.words != ("{",):
                    stack[-1].children.append(opener._replace(block=tuple(frame.children)))
            can_open = False
            continue
        words, unmatched = split_words(text)
        if unmatched:
            diagnostics.error(location, "unmatched '\"'")
            words = []  # the line's meaning is unclear: report it once and drop it
        if not words:
            continue
        stack[-1].children.append(Statement(tuple(words), text, location))
        can_open = True
    for frame in stack[:0:-1]:
        opener = frame.opener
        assert opener is not None
        diagnostics.error(opener.location, f"block '{' '.join(opener.words)}' is never closed (missing '}}')")
    return root
