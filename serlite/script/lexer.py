"""Turns config text into tokens (SER's ``cfg.lex``).

Owns: comments (``# ...`` to the end of the line, ``/* ... */`` which may nest, as in SER),
string literals and their escapes, numbers, identifiers and punctuation, and the position
(1-based line and column) of every token.  Whitespace is not a token, but every token keeps
its start and end offset, so the parser can glue adjacent tokens back into the unquoted address
forms SER accepts (``udp:127.0.0.1:5060``, ``[::1]``, ``192.168.0.0/16``, ``br-lan``).

Token kinds: ``"id"``, ``"num"`` (value: int), ``"str"`` (value: the unescaped text), ``"pv"``
(a pseudo-variable, value: ``(name, argument or None)``: ``$ru`` is ``("ru", None)``,
``$hdr(User-Agent)`` is ``("hdr", "User-Agent")``), ``"eof"``, and for punctuation the
punctuation itself (``"=="``, ``"("``, ``"+"``, ...).

String escapes (SER): ``\\n \\r \\t \\a \\\\ \\" \\'``; any other backslash is kept as written,
so regular expressions like ``"^sip:\\+?[0-9]+@"`` mean what they say.  A string must end on the
line it starts on.
"""

from __future__ import annotations

import re

from .errors import ConfigError

MAX_NUMBER_CHARS = 100      # far above any setting's range; bounds int() and its error text

# Longest first: "==" before "=", "&&" before a lone "&" (which is an error).
_PUNCT = ("==", "!=", "=~", "!~", ">=", "<=", "&&", "||",
          "=", "!", ">", "<", "(", ")", "{", "}", "[", "]", ";", ",", ":", ".", "/", "-", "*", "+")

_TOKEN_RE = re.compile(
    r"(?P<ws>[ \t\r\f\v]+)"
    r"|(?P<nl>\n)"
    r"|(?P<hex>0[xX][0-9a-fA-F]+)"
    r"|(?P<num>[0-9]+)"
    r"|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<pv>\$(?P<pvname>[A-Za-z_][A-Za-z0-9_]*)(?:\((?P<pvarg>[^()\s\"']*)\))?)"
    r"|(?P<punct>" + "|".join(re.escape(p) for p in _PUNCT) + r")"
)

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "\\": "\\", '"': '"', "'": "'"}


class Token:
    """One token: ``kind``, ``value``, 1-based ``line``/``col``, and ``start``/``end`` offsets
    into the text."""

    __slots__ = ("kind", "value", "line", "col", "start", "end")

    def __init__(self, kind, value, line, col, start, end):
        self.kind = kind
        self.value = value
        self.line = line
        self.col = col
        self.start = start
        self.end = end

    def __repr__(self):
        return f"Token({self.kind!r}, {self.value!r}, {self.line}:{self.col})"


def tokenize(text, filename):
    """The tokens of ``text``, ending with an ``"eof"`` token.  Raises ConfigError for an
    unterminated string or comment and for characters the language does not use."""
    tokens = []
    append = tokens.append
    pos = 0
    line = 1
    line_start = 0
    n = len(text)
    match = _TOKEN_RE.match
    while pos < n:
        c = text[pos]
        if c == "#":
            nl = text.find("\n", pos)
            pos = n if nl < 0 else nl
            continue
        if c == "/" and text.startswith("/*", pos):
            pos, line, line_start = _skip_comment(text, pos, line, line_start, filename)
            continue
        if c == '"' or c == "'":
            end, value = _read_string(text, pos, line, pos - line_start + 1, filename)
            append(Token("str", value, line, pos - line_start + 1, pos, end))
            pos = end
            continue
        m = match(text, pos)
        if m is None:
            hint = {"&": "'and' is written &&", "|": "'or' is written ||",
                    "$": "a pseudo-variable is $name or $hdr(Name)"}.get(c)
            raise ConfigError(f"unexpected character {c!r}", filename, line,
                              pos - line_start + 1, hint)
        kind = m.lastgroup
        end = m.end()
        if kind == "ws":
            pass
        elif kind == "nl":
            line += 1
            line_start = end
        elif kind in ("num", "hex"):
            if end - pos > MAX_NUMBER_CHARS:    # int() of 4300+ digits raises; none is needed
                raise ConfigError(f"a number of {end - pos} characters", filename, line,
                                  pos - line_start + 1,
                                  f"numbers here are at most {MAX_NUMBER_CHARS} characters")
            append(Token("num", int(m.group(), 10 if kind == "num" else 16), line,
                         pos - line_start + 1, pos, end))
        elif kind == "id":
            append(Token("id", m.group(), line, pos - line_start + 1, pos, end))
        elif kind == "pv":
            if text.startswith("(", end):
                raise ConfigError(f"bad {m.group()}(...)", filename, line,
                                  pos - line_start + 1,
                                  "write the argument without spaces or quotes: $hdr(User-Agent)")
            append(Token("pv", (m.group("pvname"), m.group("pvarg")), line,
                         pos - line_start + 1, pos, end))
        else:
            p = m.group()
            append(Token(p, p, line, pos - line_start + 1, pos, end))
        pos = end
    append(Token("eof", None, line, pos - line_start + 1, pos, pos))
    return tokens


def _skip_comment(text, pos, line, line_start, filename):
    """Skip a ``/* */`` comment starting at ``pos`` (nested ones too); returns the new
    (pos, line, line_start)."""
    start_line, start_col = line, pos - line_start + 1
    depth = 0
    n = len(text)
    while pos < n:
        if text.startswith("/*", pos):
            depth += 1
            pos += 2
        elif text.startswith("*/", pos):
            depth -= 1
            pos += 2
            if depth == 0:
                return pos, line, line_start
        else:
            if text[pos] == "\n":
                line += 1
                line_start = pos + 1
            pos += 1
    raise ConfigError("unterminated comment", filename, start_line, start_col,
                      hint="a '/*' comment must end with '*/'")


def _read_string(text, pos, line, col, filename):
    """Read the string literal whose quote is at ``pos``; returns (end offset, value)."""
    quote = text[pos]
    out = []
    i = pos + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == quote:
            return i + 1, "".join(out)
        if c == "\n":
            break
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "\n":
                break
        out.append(c)
        i += 1
    raise ConfigError("unterminated string", filename, line, col,
                      hint=f"close it with {quote} on the same line (use \\n for a newline)")
