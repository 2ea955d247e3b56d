"""Reading keyword arguments the way keepalived's read_* helpers do, reporting every problem."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from ipaddress import IPv4Address, IPv6Address, ip_address

from fastvrrp.config.diagnostics import Diagnostics, did_you_mean
from fastvrrp.config.lexer import split_quoted_escaped
from fastvrrp.config.model import IPAddress, Script
from fastvrrp.config.parser import Statement

_INT_RE = re.compile(r"[+-]?[0-9]+")
_DECIMAL_RE = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
TRUE_WORDS = ("true", "on", "yes")
FALSE_WORDS = ("false", "off", "no")


class Reader:
    """Argument readers bound to the diagnostics of one load; each returns None on error."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diag = diagnostics

    # -- shape ---------------------------------------------------------------------------

    def no_block(self, stmt: Statement) -> bool:
        if stmt.block is not None:
            self.diag.error(stmt.location, f"'{stmt.keyword}' does not take a {{ }} block")
            return False
        return True

    def block(self, stmt: Statement) -> tuple[Statement, ...] | None:
        if stmt.block is None:
            self.diag.error(stmt.location, f"'{stmt.keyword}' needs a {{ }} block")
        return stmt.block

    def arg(self, stmt: Statement, index: int = 1, what: str = "a value") -> str | None:
        if len(stmt.words) <= index:
            self.diag.error(stmt.location, f"'{stmt.keyword}' needs {what}")
            return None
        return stmt.words[index]

    def at_most(self, stmt: Statement, count: int) -> None:
        """keepalived ignores surplus words; say so rather than drop them silently."""
        if len(stmt.args) > count:
            extra = " ".join(stmt.args[count:])
            self.diag.warning(stmt.location, f"'{stmt.keyword}': ignoring extra arguments '{extra}'")

    def flag(self, stmt: Statement) -> bool:
        if self.no_block(stmt):
            self.at_most(stmt, 0)
        return True

    # -- values --------------------------------------------------------------------------

    def integer(self, stmt: Statement, low: int, high: int, index: int = 1, what: str | None = None) -> int | None:
        text = self.arg(stmt, index)
        if text is None:
            return None
        name = what or f"'{stmt.keyword}'"
        if not _INT_RE.fullmatch(text):
            self.diag.error(stmt.location, f"{name} must be an integer, not '{text}'")
            return None
        value = int(text)
        if not low <= value <= high:
            self.diag.error(stmt.location, f"{name} {value} is out of range ({low}-{high})")
            return None
        return value

    def decimal(self, stmt: Statement, low: Decimal, high: Decimal, index: int = 1, unit: str = "s") -> Decimal | None:
        """A non-negative decimal such as `0.25`, range-checked (keepalived's read_decimal_unsigned)."""
        text = self.arg(stmt, index)
        if text is None:
            return None
        if not _DECIMAL_RE.fullmatch(text):
            self.diag.error(stmt.location, f"'{stmt.keyword}' must be a number of seconds, not '{text}'")
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            self.diag.error(stmt.location, f"'{stmt.keyword}' must be a number of seconds, not '{text}'")
            return None
        if not low <= value <= high:
            self.diag.error(stmt.location, f"'{stmt.keyword}' {text} is out of range ({low}-{high} {unit})")
            return None
        return value

    def boolean(self, stmt: Statement, index: int = 1) -> bool | None:
        """An optional on/off word after a keyword; the bare keyword means true."""
        self.no_block(stmt)
        if len(stmt.words) <= index:
            return True
        word = stmt.words[index]
        self.at_most(stmt, index)
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        self.diag.error(stmt.location, f"'{stmt.keyword}' takes true/false (on/off, yes/no), not '{word}'")
        return None

    def choice(self, stmt: Statement, choices: Mapping[str, object], index: int = 1) -> object | None:
        text = self.arg(stmt, index)
        if text is None:
            return None
        if text not in choices:
            options = "|".join(choices)
            self.diag.error(
                stmt.location,
                f"'{stmt.keyword}' must be {options}, not '{text}'{did_you_mean(text, choices)}",
            )
            return None
        return choices[text]

    def address(self, stmt: Statement, text: str, what: str) -> IPAddress | None:
        try:
            return ip_address(text)
        except ValueError:
            self.diag.error(stmt.location, f"{what}: '{text}' is not an IP address")
            return None

    def ipv4(self, stmt: Statement, index: int = 1) -> IPv4Address | None:
        text = self.arg(stmt, index, "an IPv4 address")
        if text is None:
            return None
        addr = self.address(stmt, text, f"'{stmt.keyword}'")
        if addr is not None and not isinstance(addr, IPv4Address):
            self.diag.error(stmt.location, f"'{stmt.keyword}' needs an IPv4 address, not '{text}'")
            return None
        return addr

    def ipv6(self, stmt: Statement, index: int = 1) -> IPv6Address | None:
        text = self.arg(stmt, index, "an IPv6 address")
        if text is None:
            return None
        addr = self.address(stmt, text, f"'{stmt.keyword}'")
        if addr is not None and not isinstance(addr, IPv6Address):
            self.diag.error(stmt.location, f"'{stmt.keyword}' needs an IPv6 address, not '{text}'")
            return None
        return addr

    def script(self, stmt: Statement, with_user: bool = True) -> Script | None:
        """A script keyword: the first word (quote it to pass arguments) then [user [group]].

        keepalived re-splits the raw line honouring quotes and escapes, then splits the
        command word again into argv (lib/notify.c set_script_params_array()).
        """
        if not self.no_block(stmt):
            return None
        words = split_quoted_escaped(stmt.raw)
        if words is None:
            self.diag.error(stmt.location, f"'{stmt.keyword}': unterminated quote or trailing backslash")
            return None
        if len(words) < 2 or not words[1].strip():
            self.diag.error(stmt.location, f"'{stmt.keyword}' needs a command")
            return None
        argv = split_quoted_escaped(words[1])
        if not argv:
            self.diag.error(stmt.location, f"'{stmt.keyword}': cannot split command '{words[1]}'")
            return None
        user = group = None
        if with_user:
            if len(words) > 2:
                user = words[2]
            if len(words) > 3:
                group = words[3]
            if len(words) > 4:
                self.diag.warning(stmt.location, f"'{stmt.keyword}': ignoring extra arguments '{' '.join(words[4:])}'")
        elif len(words) > 2:
            self.diag.warning(
                stmt.location,
                f"'{stmt.keyword}': keepalived ignores '{' '.join(words[2:])}'; quote the whole command to pass arguments",
            )
        return Script(tuple(argv), user, group)


Handler = Callable[..., None]


def dispatch(
    reader: Reader,
    statements: tuple[Statement, ...] | list[Statement],
    handlers: Mapping[str, Handler],
    section: str,
    target: object,
    inert: Mapping[str, str] | None = None,
) -> None:
    """Call the handler of each statement; unknown keywords are errors with a suggestion.

    `inert` maps keepalived keywords that fastvrrp accepts but does not act on to the reason
    given in their one warning.
    """
    for stmt in statements:
        handler = handlers.get(stmt.keyword)
        if handler is not None:
            handler(reader, stmt, target)
            continue
        if inert is not None and stmt.keyword in inert:
            reader.diag.warning(stmt.location, f"'{stmt.keyword}' {inert[stmt.keyword]}")
            continue
        known = list(handlers) + list(inert or ())
        reader.diag.error(
            stmt.location,
            f"unknown keyword '{stmt.keyword}' in {section}{did_you_mean(stmt.keyword, known)}",
        )
