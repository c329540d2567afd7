"""The syntax tree of a config file, as the parser builds it and the compiler reads it.

Owns: one small class per construct, each with the 1-based ``line``/``col`` where it starts.
Nodes hold what was written (names as strings, literal values); nothing is resolved here.
"""

from __future__ import annotations


class Node:
    """Base: ``__slots__`` fields, positional construction, a readable repr, equality by fields
    (positions included), which the parser tests use."""

    __slots__ = ("line", "col")
    fields = ()

    def __init__(self, *args, line=0, col=0):
        if len(args) != len(self.fields):
            raise TypeError(f"{type(self).__name__} takes {len(self.fields)} fields")
        for name, value in zip(self.fields, args):
            setattr(self, name, value)
        self.line = line
        self.col = col

    def __repr__(self):
        inner = ", ".join(repr(getattr(self, f)) for f in self.fields)
        return f"{type(self).__name__}({inner})@{self.line}:{self.col}"

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, f) == getattr(other, f) for f in self.fields + ("line", "col"))

    __hash__ = None


# --- values -------------------------------------------------------------------------------------

class Value(Node):
    """A literal: ``kind`` is ``"str"`` (quoted), ``"int"``, ``"word"`` (one bare identifier such
    as ``yes``, ``myself``, ``udp``) or ``"raw"`` (adjacent tokens glued back together, as in
    ``udp:127.0.0.1:5060`` or ``10.0.0.0/8``); ``value`` is the str or int."""
    __slots__ = ("kind", "value")
    fields = ("kind", "value")


class PV(Node):
    """A pseudo-variable: ``$ru`` is ``PV("ru", None)``, ``$hdr(User-Agent)`` is
    ``PV("hdr", "User-Agent")``."""
    __slots__ = ("name", "arg")
    fields = ("name", "arg")

    def text(self):
        """As written: ``$ru``, ``$hdr(User-Agent)``."""
        return f"${self.name}" if self.arg is None else f"${self.name}({self.arg})"


class Concat(Node):
    """``a + b + ...``: ``parts`` are Values and PVs, joined as text at run time."""
    __slots__ = ("parts",)
    fields = ("parts",)


# --- top level ----------------------------------------------------------------------------------

class Config(Node):
    """A whole file: ``items`` in file order (Global, LoadModule, ModParam, RouteDef); the
    position is the end of the file."""
    __slots__ = ("items",)
    fields = ("items",)


class Global(Node):
    """``name = value``."""
    __slots__ = ("name", "value")
    fields = ("name", "value")


class LoadModule(Node):
    """``loadmodule "path"``; the position is the string's."""
    __slots__ = ("path",)
    fields = ("path",)


class ModParam(Node):
    """``modparam("module", "param", value)``; ``module``/``param``/``value`` are Values."""
    __slots__ = ("module", "param", "value")
    fields = ("module", "param", "value")


class RouteDef(Node):
    """``route[name] { ... }``: ``kind`` is export.REQUEST_ROUTE etc., ``name`` a str (``"0"`` for
    the main request route and the catch-all ``onreply_route``), ``body`` a Block."""
    __slots__ = ("kind", "name", "body")
    fields = ("kind", "name", "body")


# --- statements ---------------------------------------------------------------------------------

class Block(Node):
    __slots__ = ("stmts",)
    fields = ("stmts",)


class If(Node):
    """``if (cond) then [else orelse]``; ``orelse`` is None or a statement."""
    __slots__ = ("cond", "then", "orelse")
    fields = ("cond", "then", "orelse")


class Call(Node):
    """``name(args)``, as a statement or a condition; ``args`` are Values, PVs or Concats."""
    __slots__ = ("name", "args")
    fields = ("name", "args")


class Assign(Node):
    """``$pv = value;``: ``target`` a PV, ``value`` a Value, PV or Concat."""
    __slots__ = ("target", "value")
    fields = ("target", "value")


class RouteCall(Node):
    """``route(name)``: run request route ``name`` (a str)."""
    __slots__ = ("name",)
    fields = ("name",)


class Return(Node):
    """``return;`` (value None), ``return(N);`` or ``return N;``."""
    __slots__ = ("value",)
    fields = ("value",)


class Break(Node):
    __slots__ = ()


class Drop(Node):
    __slots__ = ()


class Exit(Node):
    __slots__ = ()


class Nop(Node):
    """The empty statement ``;``."""
    __slots__ = ()


# --- conditions ---------------------------------------------------------------------------------

class Not(Node):
    __slots__ = ("expr",)
    fields = ("expr",)


class And(Node):
    __slots__ = ("left", "right")
    fields = ("left", "right")


class Or(Node):
    __slots__ = ("left", "right")
    fields = ("left", "right")


class Compare(Node):
    """``left op right``: ``left`` names what is compared (``"method"``, ``"uri"``,
    ``"src_ip"``, ...) or is a PV; ``op`` is ``==``, ``!=``, ``=~``, ``!~``, ``>``, ``<``,
    ``>=`` or ``<=``; ``right`` a Value, or (after a PV) also a PV or Concat.  The position is
    the left side's."""
    __slots__ = ("left", "op", "right")
    fields = ("left", "op", "right")


class Const(Node):
    """A number used as a condition (``if (1)``)."""
    __slots__ = ("value",)
    fields = ("value",)
