"""Tables in SER's dbtext format: one text file per table in a directory (``db_url``
``dbtext:///etc/ser/db`` -> the table ``subscriber`` is the file ``/etc/ser/db/subscriber``).

The format, as SER's, Kamailio's and OpenSIPS's db_text modules read and write it:

* The first line declares the columns, separated by white space, each ``name(type)`` or
  ``name(type,attr)``: the type is ``str``/``string``, ``int``, ``double``, ``blob`` or
  ``time``/``datetime`` (db_text reads the first letter only: ``s i d b t``), the attribute
  ``null`` (may be empty) or ``auto`` (an int the database numbers itself).
* Every other line is a record: its fields separated by ``:``, in the order of the columns.
  An empty field is null.  In a string field ``\\:`` is a colon, ``\\\\`` a backslash, ``\\n``
  ``\\r`` ``\\t`` newline, carriage return, tab, ``\\0`` the zero octet; any other backslash is
  an error.  Blank lines are skipped.

Reading never stops at a bad record: it is reported with its line number (``path:N: why``)
and left out (db_text drops the whole table instead).  A bad header line makes the table
unusable: ``DbTextError``.  Rewriting keeps bad records as they were, so fixing one table line
by hand is never undone by a tool.

Text is handled as octets (latin-1 strings, as serlite's SIP layer does): a UTF-8 user name in
the file compares equal to the same name in a SIP message.  Nothing here reads a clock.

The ``subscriber`` table (auth_db, ``ser-ctl user``) is described at the end of this file.
"""

from __future__ import annotations

import os

from .location import parse_db_url

from .files import replace_atomically

__all__ = ["Column", "Table", "DbTextError", "parse_db_url", "table_path", "parse_header",
           "read_table", "write_table", "escape", "unescape", "SUBSCRIBER_COLUMNS"]

_ENC = "latin-1"          # one character per octet: every file round-trips
_TYPES = {"s": "str", "i": "int", "d": "double", "b": "blob", "t": "time"}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", ":": ":", "0": "\0"}
_ESCAPE_TABLE = str.maketrans({"\\": "\\\\", ":": "\\:", "\n": "\\n", "\r": "\\r",
                               "\t": "\\t", "\0": "\\0"})


class DbTextError(Exception):
    """A table file that cannot be used at all (its header line is wrong)."""


class Column:
    """``name``, ``type`` (``str int double blob time``), ``type_text`` as written
    (``string`` stays ``string``), ``null`` and ``auto`` flags."""

    __slots__ = ("name", "type", "type_text", "null", "auto")

    def __init__(self, name, type_="str", null=False, auto=False, type_text=None):
        self.name = name
        self.type = type_
        self.type_text = type_text or type_
        self.null = null
        self.auto = auto

    def text(self):
        attr = ",null" if self.null else ",auto" if self.auto else ""
        return f"{self.name}({self.type_text}{attr})"

    def __repr__(self):
        return f"Column({self.text()})"


class Table:
    """A table read from (or to be written to) a file.

    ``columns`` a list of Column; ``rows`` a list whose items are dicts (column name -> value:
    ``str`` for string columns, ``int``/``float`` for numbers, ``None`` for null) or, for a line
    that did not parse, the line's text as a ``str`` (kept so a rewrite does not lose it).
    """

    def __init__(self, columns, rows=None):
        self.columns = list(columns)
        self.rows = rows if rows is not None else []

    def names(self):
        return [c.name for c in self.columns]

    def column(self, name):
        for c in self.columns:
            if c.name == name:
                return c
        return None

    def records(self):
        """The rows that parsed (dicts)."""
        return [r for r in self.rows if isinstance(r, dict)]

    def header(self):
        return " ".join(c.text() for c in self.columns)

    def next_auto(self, name):
        """The next value of an ``auto`` int column: one more than the largest."""
        values = [r.get(name) for r in self.records() if isinstance(r.get(name), int)]
        return max(values, default=0) + 1


def table_path(db_url, table):
    """The file of ``table`` in the database ``db_url`` (``dbtext:///dir`` or a directory);
    ``ValueError`` for another scheme or a table name that is not a plain file name."""
    if not table or "/" in table or table in (".", ".."):
        raise ValueError(f"bad table name {table!r}")
    return os.path.join(parse_db_url(db_url), table)


# --- reading ------------------------------------------------------------------------------------

def parse_header(line):
    """The Column list of a header line; ``DbTextError`` if it is not one."""
    columns = []
    for word in line.split():
        name, paren, rest = word.partition("(")
        if not name or not paren or not rest.endswith(")"):
            raise DbTextError(f"bad column definition {word!r} (want name(type))")
        spec = rest[:-1].split(",")
        type_text = spec[0].strip()
        type_ = _TYPES.get(type_text[:1].lower())
        if type_ is None:
            raise DbTextError(f"column {name!r}: unknown type {type_text!r}")
        attrs = [a.strip().lower() for a in spec[1:]]
        for a in attrs:
            if a not in ("null", "auto"):
                raise DbTextError(f"column {name!r}: unknown attribute {a!r}")
        if "auto" in attrs and type_ != "int":
            raise DbTextError(f"column {name!r}: only int columns can be auto")
        if any(c.name == name for c in columns):
            raise DbTextError(f"column {name!r} declared twice")
        columns.append(Column(name, type_, "null" in attrs, "auto" in attrs, type_text))
    if not columns:
        raise DbTextError("no columns declared on the first line")
    return columns


def unescape(field):
    """The value of an escaped string field; ``ValueError`` for an unknown escape."""
    if "\\" not in field:
        return field
    out = []
    i = 0
    n = len(field)
    while i < n:
        j = field.find("\\", i)
        if j < 0:
            out.append(field[i:])
            break
        out.append(field[i:j])
        c = field[j + 1:j + 2]
        if c not in _ESCAPES or not c:
            raise ValueError(f"bad escape {field[j:j + 2]!r}")
        out.append(_ESCAPES[c])
        i = j + 2
    return "".join(out)


def escape(value):
    """A string as a field: the escapes of ``unescape`` applied."""
    return value.translate(_ESCAPE_TABLE)


def _split_fields(line):
    """Split a record at its unescaped colons (escapes are left in place)."""
    fields = []
    start = i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c == ":":
            fields.append(line[start:i])
            start = i + 1
        i += 1
    fields.append(line[start:])
    return fields


def _digits(s):
    return s != "" and not s.strip("0123456789")


def _number(text, column):
    """int/time: ``-?DIGITS``; double: ``-?DIGITS[.DIGITS]`` (db_text's grammar)."""
    t = text[1:] if text[:1] == "-" else text
    if column.type == "double":
        whole, dot, frac = t.partition(".")
        if _digits(whole) and len(t) < 40 and (not dot or frac == "" or _digits(frac)):
            return float(text)
    elif _digits(t) and len(t) < 20:
        return int(text)
    raise ValueError(f"column {column.name}: {text[:30]!r} is not a number")


def parse_record(line, columns):
    """A record line as a dict; ``ValueError`` with the reason if it is bad."""
    fields = _split_fields(line)
    if len(fields) != len(columns):
        raise ValueError(f"{len(columns)} fields expected, found {len(fields)}")
    row = {}
    for col, text in zip(columns, fields):
        if text == "":
            row[col.name] = None
        elif col.type in ("int", "time", "double"):
            row[col.name] = _number(text, col)
        else:
            try:
                row[col.name] = unescape(text)
            except ValueError as exc:
                raise ValueError(f"column {col.name}: {exc}") from None
    return row


def format_record(row, columns):
    """The line (without newline) of a record dict; missing values are null."""
    out = []
    for col in columns:
        v = row.get(col.name)
        if v is None:
            out.append("")
        elif col.type in ("int", "time"):
            out.append(str(int(v)))
        elif col.type == "double":
            out.append(f"{float(v):.2f}")
        else:
            out.append(escape(str(v)))
    return ":".join(out)


def read_table(path):
    """``(Table, warnings)`` from the file at ``path``; each warning is ``path:N: reason`` for
    a record left out.  ``FileNotFoundError`` when there is no file, ``DbTextError`` for a bad
    header, other ``OSError`` as raised."""
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode(_ENC)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or not lines[0].strip():
        raise DbTextError(f"{path}:1: no header line (want e.g. "
                          f"'{' '.join(c.text() for c in SUBSCRIBER_COLUMNS)}')")
    try:
        columns = parse_header(lines[0].rstrip("\r"))
    except DbTextError as exc:
        raise DbTextError(f"{path}:1: {exc}") from None
    table = Table(columns)
    warnings = []
    for lineno, line in enumerate(lines[1:], start=2):
        if line.endswith("\r"):
            line = line[:-1]
        if not line.strip():
            continue
        try:
            table.rows.append(parse_record(line, columns))
        except ValueError as exc:
            warnings.append(f"{path}:{lineno}: {exc}; record skipped")
            table.rows.append(line)
    return table, warnings


# --- writing ------------------------------------------------------------------------------------

def write_table(path, table, mode=0o600):
    """Replace the file at ``path`` with ``table``, atomically: a temporary file in the same
    directory (created with ``mode``), written and fsync'd, renamed over ``path``, then the
    directory fsync'd.  A crash leaves either the old table or the new one, never a mix."""
    lines = [table.header()]
    for row in table.rows:
        lines.append(row if isinstance(row, str) else format_record(row, table.columns))
    data = ("\n".join(lines) + "\n").encode(_ENC)
    replace_atomically(path, lambda f: f.write(data), mode)


# --- the subscriber table -----------------------------------------------------------------------
#
# SER's auth_db reads the accounts from the table named in www_authorize("realm", "subscriber"):
#   username  the user part of the digest username ("alice")
#   domain    the domain: with auth_db's use_domain=1 it must equal the realm
#   ha1       MD5(username ":" realm ":" password)             (RFC 2617 3.2.2.2 H(A1))
#   ha1b      MD5(username "@" domain ":" realm ":" password)  (for phones that send
#             username="alice@home")
#   password  the clear password: read (auth_db computes HA1 itself when ha1 is empty or with
#             calculate_ha1=yes), never written by ser-ctl
# Other columns (Kamailio's id, email_address, ...) are allowed and kept by ser-ctl.

SUBSCRIBER_COLUMNS = (Column("username"), Column("domain"), Column("ha1"), Column("ha1b"))
