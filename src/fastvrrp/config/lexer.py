"""keepalived.conf text -> logical lines, following keepalived's lib/parser.c read_line().

What happens to each physical line, in keepalived's order:
  comments (`#`, `!`; `\\#` and `\\!` escape them; quotes protect them) are cut,
  `@id` / `@^id` prefixes keep or drop the line for the config id,
  `$NAME=value` defines (a trailing `\\` continues the value on following lines),
  `$NAME` / `${NAME}` are substituted (a multi-line definition only on a line of its own),
  `include PATTERN` reads matching files (relative to the including file, globbed, sorted),
  and every `{` / `}` outside quotes becomes a line of its own.
Every line produced keeps the file and line number it came from.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from fastvrrp.config.diagnostics import Diagnostics, Location

# Substitution may re-introduce `$`; keepalived loops until nothing changes. We bound it.
MAX_SUBSTITUTION_PASSES = 32

_INCLUDE_RE = re.compile(r"include[rmwba]?[ \t]+(.*)$")
_DEFINITION_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)=[ \t]*(.*)$")
_REFERENCE_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_DECOMMENT_SPECIAL = re.compile(r'["\\#!]')
_BRACES_RE = re.compile(r"([{}])")
_QUOTED_PIECE_RE = re.compile(r"""([^\s"']+)|"([^"]*)"|'([^']*)'|(\s+)|(.)""")
_WORD_RE = re.compile(r'"([^"]*)"|([^\s"]+)|(")')


class Line(NamedTuple):
    text: str
    location: Location


@dataclass(slots=True)
class _Definition:
    lines: list[str]
    multiline: bool


@dataclass(slots=True)
class _FileContext:
    name: str
    directory: str
    realpath: str | None


@dataclass(slots=True)
class _State:
    definitions: dict[str, _Definition] = field(default_factory=dict)
    include_stack: list[str] = field(default_factory=list)
    pending_definition: _Definition | None = None


def decomment(text: str) -> str:
    """Strip leading/trailing blanks and the comment, as keepalived's decomment()."""
    text = text.strip(" \t")
    if _DECOMMENT_SPECIAL.search(text) is None:
        return text
    out: list[str] = []
    in_quote = False
    i = 0
    n = len(text)
    continued = False
    while i < n:
        c = text[i]
        if c == '"':
            in_quote = not in_quote
        elif c == "\\":
            if i + 1 < n:
                if not in_quote and text[i + 1] in "#!":
                    out.append(text[i + 1])
                else:
                    out.append(text[i : i + 2])
                i += 2
                continue
            continued = True
            break
        elif not in_quote and c in "#!":
            break
        out.append(c)
        i += 1
    result = "".join(out).rstrip(" \t")
    return result + "\\" if continued else result


def split_words(text: str) -> tuple[list[str], bool]:
    """Split like keepalived's alloc_strvec(): blanks separate words, "..." is one word.

    Returns the words and whether a quote was left unmatched.
    """
    if '"' not in text:
        return text.split(), False
    words: list[str] = []
    unmatched = False
    for m in _WORD_RE.finditer(text):
        quoted, plain, lone = m.groups()
        if lone is not None:
            unmatched = True
            break
        words.append(quoted if quoted is not None else plain)
    return words, unmatched


_ESCAPES = {"a": "\a", "b": "\b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def split_quoted_escaped(text: str) -> list[str] | None:
    """Split like keepalived's alloc_strvec_quoted_escaped(), used for script command lines.

    Single and double quotes group, backslash escapes (\\n, \\t, \\xHH, \\NNN octal, \\cX).
    Returns None on an unterminated quote or a trailing backslash.
    """
    if "\\" in text:
        return _split_escaped_slow(text)
    words: list[str] = []
    current: list[str] = []
    started = False
    for plain, double, single, blank, lone in _QUOTED_PIECE_RE.findall(text):
        if blank:
            if started:
                words.append("".join(current))
                current, started = [], False
        elif lone:
            return None  # an opening quote without its closing one
        else:
            current.append(plain or double or single)
            started = True
    if started:
        words.append("".join(current))
    return words


def _split_escaped_slow(text: str) -> list[str] | None:
    words: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        word: list[str] = []
        quote = ""
        while i < n:
            c = text[i]
            if c == "\\":
                i += 1
                if i >= n:
                    return None
                e = text[i]
                if e == "x" and i + 1 < n and text[i + 1] in "0123456789abcdefABCDEF":
                    j = i + 1
                    while j < n and text[j] in "0123456789abcdefABCDEF":
                        j += 1
                    word.append(chr(int(text[i + 1 : j], 16) & 0xFF))
                    i = j
                elif e == "c" and i + 1 < n:
                    word.append(chr(ord(text[i + 1]) & 0x1F))
                    i += 2
                elif e in "01234567":
                    j = i
                    while j < n and j < i + 3 and text[j] in "01234567":
                        j += 1
                    word.append(chr(int(text[i:j], 8) & 0xFF))
                    i = j
                else:
                    word.append(_ESCAPES.get(e, e))
                    i += 1
                continue
            if quote:
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
                i += 1
                continue
            if c in "\"'":
                quote = c
                i += 1
                continue
            if c in " \t":
                break
            word.append(c)
            i += 1
        if quote:
            return None
        words.append("".join(word))
    return words


class Lexer:
    """Turns a configuration (and everything it includes) into logical lines."""

    def __init__(
        self,
        diagnostics: Diagnostics,
        config_id: str | None,
        read_text: Callable[[str], str],
    ) -> None:
        self._diag = diagnostics
        self._config_id = config_id
        self._read_text = read_text
        self._state = _State()
        self.lines: list[Line] = []
        self.files: list[str] = []

    # -- entry points -------------------------------------------------------------------

    def lex_text(self, text: str, filename: str) -> list[Line]:
        directory = os.path.dirname(filename)
        real = os.path.realpath(filename) if filename else None
        self._lex_file_text(text, _FileContext(filename, directory, real))
        return self.lines

    def lex_file(self, path: str) -> list[Line]:
        try:
            text = self._read_text(path)
        except OSError as exc:
            self._diag.error(Location(path, 0), f"cannot read configuration: {exc.strerror or exc}")
            return self.lines
        return self.lex_text(text, path)

    # -- per file -----------------------------------------------------------------------

    def _lex_file_text(self, text: str, ctx: _FileContext) -> None:
        self.files.append(ctx.name)
        if ctx.realpath:
            self._state.include_stack.append(ctx.realpath)
        try:
            for number, physical in enumerate(text.splitlines(), 1):
                location = Location(ctx.name, number)
                pending = self._state.pending_definition
                if pending is not None:
                    self._continue_definition(pending, physical)
                    continue
                if not physical.strip():
                    continue
                logical = decomment(physical)
                if logical:
                    self._process(logical, location, ctx, 0)
        finally:
            # A multi-line definition never spans files.
            self._state.pending_definition = None
            if ctx.realpath:
                self._state.include_stack.pop()

    def _continue_definition(self, definition: _Definition, physical: str) -> None:
        if not physical.strip("\r\n"):
            self._state.pending_definition = None
            return
        text = decomment(physical)
        if text.endswith("\\"):
            text = text[:-1].rstrip(" \t")
        else:
            self._state.pending_definition = None
        if text:
            definition.lines.append(text)

    # -- per logical line ---------------------------------------------------------------

    def _process(self, text: str, location: Location, ctx: _FileContext, depth: int) -> None:
        first = text[0]
        if first not in "@$~i" and ("$" not in text or not self._state.definitions):
            self._emit(text, location)  # the common case: nothing to expand or include
            return
        for _ in range(MAX_SUBSTITUTION_PASSES):
            if text.startswith("@"):
                kept = self._apply_condition(text)
                if kept is None:
                    return
                text = kept
            if text.startswith("$") and self._define(text):
                return
            if text.startswith("~SEQ") or text.startswith("~LST"):
                self._diag.error(location, f"{text[:4]} loops are not supported by fastvrrp")
                return
            if not self._state.definitions or "$" not in text:
                break
            substituted, expansion = self._substitute(text, ctx)
            if expansion is not None:
                if depth >= MAX_SUBSTITUTION_PASSES:
                    self._diag.error(location, "definitions expand into themselves")
                    return
                for part in expansion:
                    self._process(part, location, ctx, depth + 1)
                return
            if substituted == text:
                break
            text = decomment(substituted)
            if not (text.startswith("@") or "$" in text):
                break
        else:
            self._diag.error(location, "definitions expand into themselves")
            return
        if not text:
            return
        if text.startswith("include"):
            m = _INCLUDE_RE.match(text)
            if m:
                self._include(m.group(1).strip().strip('"'), location, ctx)
                return
        self._emit(text, location)

    def _apply_condition(self, text: str) -> str | None:
        negate = text.startswith("@^")
        body = text[2:] if negate else text[1:]
        m = re.match(r"(\S*)[ \t]+(.*)$", body)
        if m is None:
            return None  # nothing follows the id: keepalived drops the line
        matches = self._config_id is not None and m.group(1) == self._config_id
        if matches == negate:
            return None
        return m.group(2)

    def _define(self, text: str) -> bool:
        m = _DEFINITION_RE.match(text)
        if m is None:
            return False
        name, value = m.group(1), m.group(2)
        if value.endswith("\\"):
            first = value[:-1].rstrip(" \t")
            definition = _Definition([first] if first else [], multiline=True)
            self._state.pending_definition = definition
        else:
            definition = _Definition([value], multiline=False)
        self._state.definitions[name] = definition
        return True

    def _builtin(self, name: str, ctx: _FileContext) -> str | None:
        if name == "_PWD":
            return os.path.abspath(ctx.directory or ".")
        if name == "_INSTANCE":
            return self._config_id or ""
        if name == "_HASH":
            return "#"
        if name == "_BANG":
            return "!"
        return None

    def _substitute(self, text: str, ctx: _FileContext) -> tuple[str, list[str] | None]:
        """Replace definition references; a whole-line multi-line reference expands to lines."""
        whole = _REFERENCE_RE.fullmatch(text)
        if whole is not None:
            definition = self._state.definitions.get(whole.group(1) or whole.group(2))
            if definition is not None and definition.multiline:
                return text, list(definition.lines)

        def replace(m: re.Match[str]) -> str:
            braced, bare = m.group(1), m.group(2)
            if bare is not None:
                after = text[m.end() : m.end() + 1]
                if after not in ("", " ", "\t", ",", ")"):
                    return m.group(0)
            name = braced or bare
            definition = self._state.definitions.get(name)
            if definition is None:
                builtin = self._builtin(name, ctx)
                return m.group(0) if builtin is None else builtin
            if definition.multiline:
                return m.group(0)  # keepalived only expands these on a line of their own
            return definition.lines[0] if definition.lines else ""

        return _REFERENCE_RE.sub(replace, text), None

    def _include(self, pattern: str, location: Location, ctx: _FileContext) -> None:
        joined = pattern if os.path.isabs(pattern) else os.path.join(ctx.directory, pattern)
        matches = sorted(glob.glob(joined))
        if not matches:
            if glob.has_magic(joined):
                self._diag.warning(location, f"include '{pattern}' matches no file")
            else:
                self._diag.error(location, f"include file '{joined}' not found")
            return
        for path in matches:
            if os.path.isdir(path):
                continue
            real = os.path.realpath(path)
            if real in self._state.include_stack:
                self._diag.error(location, f"include cycle: '{path}' is already being read")
                continue
            try:
                text = self._read_text(path)
            except OSError as exc:
                self._diag.error(location, f"cannot read include file '{path}': {exc.strerror or exc}")
                continue
            self._lex_file_text(text, _FileContext(path, os.path.dirname(path), real))

    def _emit(self, text: str, location: Location) -> None:
        append = self.lines.append
        if "{" not in text and "}" not in text:
            append(Line(text, location))
            return
        if '"' not in text:
            for part in _BRACES_RE.split(text):
                part = part.strip(" \t")
                if part:
                    append(Line(part, location))
            return
        start = 0
        in_quote = False
        for i, c in enumerate(text):
            if c == '"':
                in_quote = not in_quote
            elif not in_quote and (c == "{" or c == "}"):
                segment = text[start:i].strip(" \t")
                if segment:
                    append(Line(segment, location))
                append(Line(c, location))
                start = i + 1
        segment = text[start:].strip(" \t")
        if segment:
            append(Line(segment, location))
