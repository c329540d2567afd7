"""Tokens to a syntax tree (SER's ``cfg.y``), recursive descent.

Owns the grammar; knows nothing about modules, functions or globals (the compiler checks those).

    config     := item*
    item       := ID "=" value [";"]                         -- a global
                | "loadmodule" STRING [";"]
                | "modparam" "(" STRING "," STRING "," value ")" [";"]
                | ROUTEKW ["[" (NUMBER | ID | STRING) "]"] block
    ROUTEKW    := route | failure_route | onreply_route | branch_route
    value      := STRING | ["-"] NUMBER | glued      -- glued: adjacent ID NUMBER . : [ ] - / *
    block      := "{" stmt* "}"
    stmt       := block | ";" | if | simple ";"            -- the ";" may be left out before "}"
                | PV "=" expr ";"                         -- $ru = "sip:" + $rU + "@gw";
    if         := "if" cond stmt ["else" stmt]             -- "else if" is "else" + an if stmt
    simple     := ("break" | "drop" | "exit") ["(" ")"]
                | "return" ["(" int ")" | int]
                | "route" "(" (NUMBER | ID | STRING) ")"
                | ID "(" [arg ("," arg)*] ")"
    arg        := expr | glued                             -- glued only for forward(uri:host, ...)
    expr       := term ("+" term)*                         -- "+" joins text
    term       := STRING | ["-"] NUMBER | PV | ID          -- ID: null (the compiler checks)
    PV         := "$" ID ["(" header-name ")"]             -- one token: $ru, $hdr(User-Agent)
    cond       := and (("||" | "or") and)*
    and        := unary (("&&" | "and") unary)*
    unary      := ("!" | "not") unary | primary
    primary    := "(" cond ")" | LEFT OP value | PV OP expr | ID "(" args ")"
                | "route" "(" name ")" | int
    LEFT       := method | uri | from_uri | to_uri | src_ip | dst_ip | src_port | proto | af
                | status | msg:len
    OP         := "==" | "!=" | "=~" | "!~" | ">" | "<" | ">=" | "<="

As in SER, ``!`` applies to the primary after it, and a comparison is a primary, so
``!method == "REGISTER"`` is ``!(method == "REGISTER")``.  ``&&`` binds tighter than ``||``.
``if`` takes a condition, not necessarily parenthesised (SER's ``IF exp stm``).
"""

from __future__ import annotations

from . import nodes as N
from .errors import ConfigError
from .lexer import tokenize
from ..routes import BRANCH_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE, REQUEST_ROUTE

ROUTE_KEYWORDS = {
    "route": REQUEST_ROUTE,
    "failure_route": FAILURE_ROUTE,
    "onreply_route": ONREPLY_ROUTE,
    "branch_route": BRANCH_ROUTE,
}

# What a comparison may have on its left (the compiler decides which ops/values each accepts).
COMPARE_LEFT = frozenset(("method", "uri", "from_uri", "to_uri", "src_ip", "dst_ip",
                          "src_port", "proto", "af", "status"))
COMPARE_OPS = frozenset(("==", "!=", "=~", "!~", ">", "<", ">=", "<="))

# How deep blocks, ifs, parentheses and '!' may nest (together).  Recursive descent uses the
# Python stack, and so do the compiler and the compiled closures: past the limit a config gets
# ``file:line:col: nested too deeply`` instead of a RecursionError (SER's own configs nest < 10).
MAX_NESTING = 100

# Token kinds that glue into an unquoted value when nothing separates them.
_GLUE = frozenset(("id", "num", ".", ":", "[", "]", "-", "/", "*"))


def parse(text, filename):
    """The Config node of ``text``; raises ConfigError."""
    return Parser(text, filename).parse_config()


def describe(tok):
    """How an error message names a token."""
    if tok.kind == "eof":
        return "end of file"
    if tok.kind == "str":
        return "a string"
    if tok.kind == "num":
        return f"number {tok.value}"
    if tok.kind == "pv":
        name, arg = tok.value
        return f"'${name}'" if arg is None else f"'${name}({arg})'"
    return f"'{tok.value}'"


class Parser:
    def __init__(self, text, filename):
        self.text = text
        self.filename = filename
        self.tokens = tokenize(text, filename)
        self.i = 0
        self.depth = 0          # blocks, ifs, parentheses and '!' open around the parse point

    # --- helpers --------------------------------------------------------------------------------

    def peek(self, ahead=0):
        i = self.i + ahead
        toks = self.tokens
        return toks[i] if i < len(toks) else toks[-1]

    def next(self):
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def error(self, message, tok, hint=None):
        return ConfigError(message, self.filename, tok.line, tok.col, hint)

    def expect(self, kind, what=None):
        tok = self.peek()
        if tok.kind != kind:
            raise self.error(f"expected {what or repr(kind)}, got {describe(tok)}", tok)
        return self.next()

    def after_previous(self):
        """(line, col) just after the previous token: where a missing ';' belongs."""
        prev = self.tokens[self.i - 1]
        return prev.line, prev.col + (prev.end - prev.start)

    def enter(self, tok):
        """One level deeper (leave with ``self.depth -= 1``); refuses past MAX_NESTING."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nested too deeply (more than {MAX_NESTING} blocks, ifs, "
                             f"parentheses and '!' inside each other)", tok,
                             hint="split the logic into route blocks and call them with route(N)")

    def optional_semicolon(self):
        if self.peek().kind == ";":
            self.next()

    # --- top level ------------------------------------------------------------------------------

    def parse_config(self):
        items = []
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                return N.Config(items, line=tok.line, col=tok.col)
            if tok.kind == ";":
                self.next()
                continue
            items.append(self.parse_item())

    def parse_item(self):
        tok = self.peek()
        if tok.kind != "id":
            raise self.error(f"expected a global (name = value), loadmodule, modparam or a route "
                             f"block, got {describe(tok)}", tok)
        word = tok.value
        nxt = self.peek(1)
        if word in ROUTE_KEYWORDS and nxt.kind in ("[", "{"):
            return self.parse_route_def()
        if word == "loadmodule":
            self.next()
            path = self.expect("str", 'the module path in quotes: loadmodule "tm.so"')
            self.optional_semicolon()
            return N.LoadModule(path.value, line=path.line, col=path.col)
        if word == "modparam" and nxt.kind == "(":
            return self.parse_modparam()
        if nxt.kind == "=":
            self.next()
            self.next()
            value = self.parse_value("a value")
            self.optional_semicolon()
            return N.Global(word, value, line=tok.line, col=tok.col)
        if nxt.kind in ("[", "{"):
            import difflib   # only on this error path: it costs start-up time
            close = difflib.get_close_matches(word, list(ROUTE_KEYWORDS), n=1)
            raise self.error(f"unknown route block '{word}'"
                             + (f" — did you mean '{close[0]}'?" if close else ""), tok)
        raise self.error(f"expected '=' after '{word}'", nxt,
                         hint="a global is written name = value")

    def parse_modparam(self):
        start = self.next()
        self.expect("(")
        module = self.expect("str", "the module name in quotes")
        self.expect(",")
        param = self.expect("str", "the parameter name in quotes")
        self.expect(",")
        value = self.parse_value("the parameter value")
        self.expect(")", "')'")
        self.optional_semicolon()
        return N.ModParam(N.Value("str", module.value, line=module.line, col=module.col),
                          N.Value("str", param.value, line=param.line, col=param.col),
                          value, line=start.line, col=start.col)

    def parse_route_def(self):
        kw = self.next()
        kind = ROUTE_KEYWORDS[kw.value]
        if self.peek().kind == "[":
            self.next()
            name = self.parse_route_name()
            self.expect("]", "']'")
        elif kind in (REQUEST_ROUTE, ONREPLY_ROUTE):
            name = "0"
        else:
            raise self.error(f"{kw.value} needs a name", self.peek(),
                             hint=f"write {kw.value}[1] {{ ... }}")
        body = self.parse_block()
        return N.RouteDef(kind, name, body, line=kw.line, col=kw.col)

    def parse_route_name(self):
        tok = self.next()
        if tok.kind == "num":
            return str(tok.value)
        if tok.kind in ("id", "str") and tok.value:
            return tok.value
        raise self.error(f"expected a route name (a number or a name), got {describe(tok)}", tok)

    def parse_value(self, what):
        """A literal value: a string, an (optionally negative) number, a bare word, or adjacent
        tokens glued back into their source text (unquoted addresses)."""
        first = self.peek()
        if first.kind == "str":
            self.next()
            return N.Value("str", first.value, line=first.line, col=first.col)
        if first.kind not in _GLUE:
            raise self.error(f"expected {what}, got {describe(first)}", first)
        toks = [self.next()]
        while self.peek().kind in _GLUE and self.peek().start == toks[-1].end:
            toks.append(self.next())
        if len(toks) == 1:
            if first.kind == "num":
                return N.Value("int", first.value, line=first.line, col=first.col)
            if first.kind == "id":
                return N.Value("word", first.value, line=first.line, col=first.col)
        if len(toks) == 2 and first.kind == "-" and toks[1].kind == "num":
            return N.Value("int", -toks[1].value, line=first.line, col=first.col)
        raw = self.text[first.start:toks[-1].end]
        return N.Value("raw", raw, line=first.line, col=first.col)

    def parse_expr(self, what):
        """A term, or terms joined by ``+`` (a Concat)."""
        first = self.parse_term(what)
        if self.peek().kind != "+":
            return first
        parts = [first]
        while self.peek().kind == "+":
            plus = self.next()
            parts.append(self.parse_term(f"a value after '+' at {plus.line}:{plus.col}"))
        return N.Concat(parts, line=first.line, col=first.col)

    def parse_term(self, what):
        tok = self.peek()
        if tok.kind == "pv":
            self.next()
            return N.PV(tok.value[0], tok.value[1], line=tok.line, col=tok.col)
        return self.parse_value(what)

    # --- statements -----------------------------------------------------------------------------

    def parse_block(self):
        open_ = self.expect("{", "'{'")
        self.enter(open_)
        stmts = []
        while True:
            tok = self.peek()
            if tok.kind == "}":
                self.next()
                self.depth -= 1
                return N.Block(stmts, line=open_.line, col=open_.col)
            if tok.kind == "eof":
                raise self.error("missing '}'", tok,
                                 hint=f"the block opened at {open_.line}:{open_.col} is not closed")
            stmts.append(self.parse_stmt())

    def end_stmt(self, what):
        tok = self.peek()
        if tok.kind == ";":
            self.next()
        elif tok.kind != "}":   # SER tolerates a missing ';' before '}'
            line, col = self.after_previous()
            raise ConfigError(f"missing ';' after {what}", self.filename, line, col)

    def parse_stmt(self):
        tok = self.peek()
        kind = tok.kind
        if kind == "{":
            return self.parse_block()
        if kind == ";":
            self.next()
            return N.Nop(line=tok.line, col=tok.col)
        if kind == "pv":
            return self.parse_assign()
        if kind != "id":
            raise self.error(f"expected a statement, got {describe(tok)}", tok)
        word = tok.value
        nxt = self.peek(1)
        if word == "if":
            return self.parse_if()
        if word in ("break", "drop", "exit"):
            self.next()
            if nxt.kind == "(" and self.peek(1).kind == ")":   # SER also takes drop()
                self.next()
                self.next()
            self.end_stmt(f"'{word}'")
            node = {"break": N.Break, "drop": N.Drop, "exit": N.Exit}[word]
            return node(line=tok.line, col=tok.col)
        if word == "return":
            return self.parse_return()
        if word == "route" and nxt.kind == "(":
            node = self.parse_route_call()
            self.end_stmt("route(...)")
            return node
        if nxt.kind == "(":
            node = self.parse_call()
            self.end_stmt(f"{word}(...)")
            return node
        if word == "else":
            raise self.error("'else' without 'if'", tok)
        raise self.error(f"expected a statement, got '{word}'", tok,
                         hint=f"a function call needs parentheses: {word}();")

    def parse_assign(self):
        tok = self.next()
        target = N.PV(tok.value[0], tok.value[1], line=tok.line, col=tok.col)
        eq = self.peek()
        if eq.kind != "=":
            hint = "comparisons go in a condition: if ($ru == ...) ..." \
                if eq.kind in COMPARE_OPS else None
            raise self.error(f"expected '=' after {describe(tok)}, got {describe(eq)}", eq,
                             hint=hint)
        self.next()
        value = self.parse_expr(f"a value after '{target.text()} ='")
        self.end_stmt(f"the assignment to {target.text()}")
        return N.Assign(target, value, line=tok.line, col=tok.col)

    def parse_if(self):
        tok = self.next()
        self.enter(tok)
        cond = self.parse_cond()
        then = self.parse_stmt()
        orelse = None
        nxt = self.peek()
        if nxt.kind == "id" and nxt.value == "else":
            self.next()
            orelse = self.parse_stmt()
        self.depth -= 1
        return N.If(cond, then, orelse, line=tok.line, col=tok.col)

    def parse_return(self):
        tok = self.next()
        value = None
        nxt = self.peek()
        if nxt.kind == "(":
            self.next()
            value = self.parse_int("a number")
            self.expect(")", "')'")
        elif nxt.kind in ("num", "-"):
            value = self.parse_int("a number")
        self.end_stmt("return")
        return N.Return(value, line=tok.line, col=tok.col)

    def parse_int(self, what):
        tok = self.next()
        if tok.kind == "-" and self.peek().kind == "num" and self.peek().start == tok.end:
            return -self.next().value
        if tok.kind == "num":
            return tok.value
        raise self.error(f"expected {what}, got {describe(tok)}", tok)

    def parse_route_call(self):
        tok = self.next()
        self.expect("(")
        name = self.parse_route_name()
        self.expect(")", "')'")
        return N.RouteCall(name, line=tok.line, col=tok.col)

    def parse_call(self):
        tok = self.next()
        self.expect("(")
        args = []
        if self.peek().kind == ")":
            self.next()
        else:
            while True:
                args.append(self.parse_expr("an argument"))
                sep = self.next()
                if sep.kind == ")":
                    break
                if sep.kind != ",":
                    raise self.error(f"expected ',' or ')' in the arguments of {tok.value}(), "
                                     f"got {describe(sep)}", sep)
        return N.Call(tok.value, args, line=tok.line, col=tok.col)

    # --- conditions -----------------------------------------------------------------------------

    def _is_word(self, *words):
        tok = self.peek()
        return tok.kind == "id" and tok.value in words

    def parse_cond(self):
        left = self.parse_and()
        while self.peek().kind == "||" or self._is_word("or"):
            tok = self.next()
            left = N.Or(left, self.parse_and(), line=tok.line, col=tok.col)
        return left

    def parse_and(self):
        left = self.parse_unary()
        while self.peek().kind == "&&" or self._is_word("and"):
            tok = self.next()
            left = N.And(left, self.parse_unary(), line=tok.line, col=tok.col)
        return left

    def parse_unary(self):
        tok = self.peek()
        if tok.kind == "!" or self._is_word("not"):
            self.next()
            self.enter(tok)
            operand = self.parse_unary()
            self.depth -= 1
            return N.Not(operand, line=tok.line, col=tok.col)
        return self.parse_primary()

    def parse_primary(self):
        tok = self.peek()
        if tok.kind == "(":
            self.next()
            self.enter(tok)
            cond = self.parse_cond()
            self.expect(")", "')'")
            self.depth -= 1
            return cond
        if tok.kind == "num" or tok.kind == "-" and self.peek(1).kind == "num":
            return N.Const(self.parse_int("a number"), line=tok.line, col=tok.col)
        if tok.kind == "pv":
            self.next()
            left = N.PV(tok.value[0], tok.value[1], line=tok.line, col=tok.col)
            op = self.next()
            if op.kind not in COMPARE_OPS:
                raise self.error(f"expected an operator (==, !=, =~ ...) after {describe(tok)}, "
                                 f"got {describe(op)}", op,
                                 hint=f"test for a value with {left.text()} != null"
                                 if op.kind in (")", "&&", "||") else None)
            right = self.parse_expr(f"a value after '{left.text()} {op.kind}'")
            return N.Compare(left, op.kind, right, line=tok.line, col=tok.col)
        if tok.kind == "id":
            nxt = self.peek(1)
            if tok.value == "msg" and nxt.kind == ":" and self.peek(2).kind == "id" and \
                    self.peek(2).value == "len" and self.peek(3).kind in COMPARE_OPS:
                self.next()
                self.next()
                self.next()
                op = self.next().value
                right = self.parse_value(f"a value after 'msg:len {op}'")
                return N.Compare("msg:len", op, right, line=tok.line, col=tok.col)
            if tok.value in COMPARE_LEFT and nxt.kind in COMPARE_OPS:
                self.next()
                op = self.next().value
                right = self.parse_value(f"a value after '{tok.value} {op}'")
                return N.Compare(tok.value, op, right, line=tok.line, col=tok.col)
            if tok.value == "route" and nxt.kind == "(":
                return self.parse_route_call()
            if nxt.kind == "(":
                return self.parse_call()
            if tok.value in COMPARE_LEFT:
                raise self.error(f"expected an operator (==, !=, =~ ...) after '{tok.value}', "
                                 f"got {describe(nxt)}", nxt)
            raise self.error(f"expected a condition, got '{tok.value}'", tok,
                             hint=f"a function call needs parentheses: {tok.value}()")
        raise self.error(f"expected a condition, got {describe(tok)}", tok)
