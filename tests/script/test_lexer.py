"""The lexer: token kinds, positions, string escapes, comments."""

import pytest

from serlite.script.errors import ConfigError
from serlite.script.lexer import tokenize


def kinds(text):
    return [(t.kind, t.value) for t in tokenize(text, "t.cfg")][:-1]


def test_tokens_and_positions():
    toks = tokenize('route {\n\tif (!method=="REGISTER") x();\n}', "t.cfg")
    assert [(t.kind, t.line, t.col) for t in toks[:6]] == [
        ("id", 1, 1), ("{", 1, 7), ("id", 2, 2), ("(", 2, 5), ("!", 2, 6), ("id", 2, 7)]
    eq = toks[6]
    assert (eq.kind, eq.line, eq.col) == ("==", 2, 13)
    assert toks[-1].kind == "eof" and (toks[-1].line, toks[-1].col) == (3, 2)


def test_operators_longest_first():
    assert [k for k, _ in kinds("== != =~ !~ >= <= && || = ! > <")] == \
        ["==", "!=", "=~", "!~", ">=", "<=", "&&", "||", "=", "!", ">", "<"]


def test_numbers():
    assert kinds("5060 0x1F 007") == [("num", 5060), ("num", 31), ("num", 7)]


def test_a_number_of_thousands_of_digits_is_a_config_error():
    # int() refuses 4300+ decimal digits with a ValueError, which was a traceback of ser -c
    with pytest.raises(ConfigError) as info:
        tokenize("x = " + "9" * 5000, "t.cfg")
    assert str(info.value).startswith("t.cfg:1:5: a number of 5000 characters")
    with pytest.raises(ConfigError):
        tokenize("x = 0x" + "f" * 5000, "t.cfg")
    assert kinds("9" * 100) == [("num", int("9" * 100))]


def test_string_escapes_as_ser():
    [(kind, value)] = kinds(r'"a\"b\\c\n\t\r\x\."')
    assert kind == "str"
    assert value == 'a"b\\c\n\t\r\\x\\.'        # unknown escapes are kept, for regexes


def test_single_quoted_string():
    assert kinds("'it''s'") == [("str", "it"), ("str", "s")]


def test_comments():
    text = "a # one\n/* two\n /* nested */ still comment */ b"
    toks = tokenize(text, "t.cfg")
    assert [(t.value, t.line, t.col) for t in toks[:-1]] == [("a", 1, 1), ("b", 3, 32)]


def test_slash_is_a_token_outside_comments():
    assert kinds("10.0.0.0/8") == [("num", 10), (".", "."), ("num", 0), (".", "."),
                                   ("num", 0), (".", "."), ("num", 0), ("/", "/"), ("num", 8)]


@pytest.mark.parametrize("text, where, message", [
    ('x = "abc', (1, 5), "unterminated string"),
    ('x = "abc\n"', (1, 5), "unterminated string"),
    ("a\n  /* open /* closed */", (2, 3), "unterminated comment"),
    ("a @ b", (1, 3), "unexpected character '@'"),
])
def test_errors(text, where, message):
    with pytest.raises(ConfigError) as info:
        tokenize(text, "t.cfg")
    assert (info.value.line, info.value.col) == where
    assert info.value.message == message


def test_pseudo_variables_and_plus():
    assert kinds('$ru = "a" + $hdr(User-Agent) + $rU;') == [
        ("pv", ("ru", None)), ("=", "="), ("str", "a"), ("+", "+"),
        ("pv", ("hdr", "User-Agent")), ("+", "+"), ("pv", ("rU", None)), (";", ";")]
    assert kinds("$hdr()") == [("pv", ("hdr", ""))]


@pytest.mark.parametrize("text, message, hint", [
    ("$ 1", "unexpected character '$'", "a pseudo-variable is $name or $hdr(Name)"),
    ("$hdr( X)", "bad $hdr(...)", "write the argument without spaces or quotes: $hdr(User-Agent)"),
    ('$hdr("X")', "bad $hdr(...)", "write the argument without spaces or quotes: $hdr(User-Agent)"),
])
def test_bad_pseudo_variables(text, message, hint):
    with pytest.raises(ConfigError) as info:
        tokenize(text, "t.cfg")
    assert (info.value.line, info.value.col, info.value.message, info.value.hint) == \
        (1, 1, message, hint)
