"""The keepalived.conf language: comments, quotes, braces, includes, $definitions, @conditions."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastvrrp.config import ConfigError, Location, load, parse_text
from fastvrrp.config.diagnostics import Diagnostics
from fastvrrp.config.lexer import Lexer, decomment, split_quoted_escaped

VALID = "tests/data/configs/valid/main.conf"


def _lines(text: str, config_id: str | None = "test") -> list[tuple[str, int]]:
    diag = Diagnostics()
    lexer = Lexer(diag, config_id, lambda p: (_ for _ in ()).throw(OSError(2, "no such file")))
    lines = lexer.lex_text(text, "t.conf")
    assert not diag.errors, diag.errors
    return [(line.text, line.location.line) for line in lines]


def test_comments_and_quotes() -> None:
    assert decomment('  script "a # not a comment" ! comment') == 'script "a # not a comment"'
    assert decomment(r"x \# y # z") == "x # y"
    assert decomment("# whole line") == ""


def test_braces_become_their_own_lines_keeping_line_numbers() -> None:
    text = 'vrrp_instance VI_1 { interface eth0\n  virtual_ipaddress { 192.0.2.1 }\n}\nx "{ quoted }"\n'
    assert _lines(text) == [
        ("vrrp_instance VI_1", 1), ("{", 1), ("interface eth0", 1),
        ("virtual_ipaddress", 2), ("{", 2), ("192.0.2.1", 2), ("}", 2),
        ("}", 3), ('x "{ quoted }"', 4),
    ]  # fmt: skip


def test_definitions_single_multiline_and_braced() -> None:
    text = "$A=eth0\n$B=\\\n  one \\\n  two\nx $A ${A}x $Ax\n$B\n"
    assert _lines(text) == [("x eth0 eth0x $Ax", 5), ("one", 6), ("two", 6)]


def test_conditional_lines_follow_the_config_id() -> None:
    text = "@lb1 a\n@^lb1 b\n@lb2 c\nd\n"
    assert [t for t, _ in _lines(text, "lb1")] == ["a", "d"]
    assert [t for t, _ in _lines(text, "lb2")] == ["b", "c", "d"]
    assert [t for t, _ in _lines(text, None)] == ["b", "d"]


def test_script_splitting_follows_keepalived() -> None:
    assert split_quoted_escaped('notify "/bin/x a\\tb" root') == ["notify", "/bin/x a\tb", "root"]
    assert split_quoted_escaped("a 'b c'd \"\"") == ["a", "b cd", ""]
    assert split_quoted_escaped('a "b') is None


def test_valid_fixture_with_includes_definitions_and_conditions(in_repo: object) -> None:
    for config_id, priority in (("lb1", 200), ("lb2", 110)):
        config = load(VALID, config_id=config_id)
        assert config.warnings == ()
        assert config.globals.router_id == "eth0-router"
        vi1 = config.instance("VI_1")
        assert (vi1.interface, vi1.priority) == ("eth0", priority)
        assert [str(v.address) for v in vi1.vips] == ["192.0.2.10/24", "192.0.2.11/24"]
        assert vi1.notifies.master is not None
        assert vi1.notifies.master.argv == ("/usr/local/bin/notify.sh", "quoted arg", "hash#kept")
        assert vi1.notifies.master.user == "root"
    # Included files keep their own names and line numbers; globbed files come sorted.
    assert config.files == (
        VALID,
        "tests/data/configs/valid/conf.d/10-scripts.conf",
        "tests/data/configs/valid/conf.d/20-backend.conf",
    )
    chk = config.script("chk_web")
    assert chk.location == Location("tests/data/configs/valid/conf.d/10-scripts.conf", 1)
    assert (chk.interval_s, chk.timeout_s, chk.script.argv) == (2.5, 2.5, ("/usr/bin/curl", "-sf", "http://127.0.0.1/"))
    vi2 = config.instance("VI_2")
    assert vi2.track_scripts[0].weight == -10
    assert vi2.vips[0].device == "eth1"


def test_include_glob_without_match_warns(tmp_path: Path) -> None:
    main = tmp_path / "k.conf"
    main.write_text("include nothing/*.conf\n")
    config = load(str(main))
    assert [str(w) for w in config.warnings] == [f"{main}:1: warning: include 'nothing/*.conf' matches no file"]


def test_self_include_is_a_cycle(tmp_path: Path) -> None:
    main = tmp_path / "k.conf"
    main.write_text("global_defs {\n}\ninclude k.conf\n")
    with pytest.raises(ConfigError) as caught:
        load(str(main))
    assert caught.value.messages == [f"{main}:3: include cycle: '{tmp_path}/k.conf' is already being read"]


def test_parse_text_names_the_file_in_messages() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text("bogus_section {\n}\n", "inline.conf")
    assert caught.value.messages == ["inline.conf:1: unknown keyword 'bogus_section' at top level"]
