"""textops: regular expressions and header edits on the message text: ``search``, ``replace``,
``subst``, ``append_hf``, ``remove_hf``, ``is_present_hf``; and sed-like edits of the Request-URI,
``subst_uri`` and ``subst_user`` (Kamailio's textops).

Regular expressions are compiled once at start-up and match case-insensitively, as SER's
POSIX ones did (the ``subst*`` expressions only with their ``i`` flag).
"""

import re

from ..sip.errors import ParseError
from ..sip.message import parse
from ..sip.uri import URI
from .export import ANY_ROUTE, BRANCH_ROUTE, FAILURE_ROUTE, REQUEST_ROUTE, Function, Module, \
    ModuleSpec

_REQ = REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE
_CONTENT_LENGTH = re.compile(r"(?im)^((?:content-length|l)[ \t]*:[ \t]*)\d+")


def _compile(pattern):
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}")


def _fix_re(module, args, script):
    return (_compile(str(args[0])),) + tuple(str(a) for a in args[1:])


def _sed_repl(repl):
    """SER's ``\\1`` back-references, in Python's form."""
    return re.sub(r"\\(\d)", r"\\g<\1>", repl)


def _fix_subst(module, args, script):
    """``/regex/replacement/flags`` (any delimiter; flags g and i)."""
    text = str(args[0])
    if len(text) < 4:
        raise ValueError(f"bad subst expression {text!r}: expected /re/repl/flags")
    delim = text[0]
    parts = re.split(r"(?<!\\)" + re.escape(delim), text[1:])
    if len(parts) != 3:
        raise ValueError(f"bad subst expression {text!r}: "
                         f"expected {delim}re{delim}repl{delim}flags")
    pattern, repl, flags = parts
    if set(flags) - set("gi"):
        raise ValueError(f"bad subst flags {flags!r}: only g and i")
    try:
        regex = re.compile(pattern, re.IGNORECASE if "i" in flags else 0)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}")
    return (regex, _sed_repl(repl), 0 if "g" in flags else 1)


def _fix_hf(module, args, script):
    text = str(args[0])
    return (text.rstrip("\r\n"),)


def _fix_name(module, args, script):
    name = str(args[0]).strip()
    if not name or ":" in name:
        raise ValueError(f"bad header name {name!r}")
    return (name,)


class Textops(Module):
    name = "textops"

    @staticmethod
    def _text(ctx):
        return ctx.msg.to_bytes().decode("latin-1")

    @staticmethod
    def _replace_message(ctx, text):
        """Re-read the edited message text; an edit of the body changes its length, so the
        Content-Length follows it."""
        head, sep, body = text.partition("\r\n\r\n")
        head = _CONTENT_LENGTH.sub(lambda m: f"{m.group(1)}{len(body)}", head)
        ctx.msg = parse((head + sep + body).encode("latin-1"))

    def search(self, ctx, regex):
        return 1 if regex.search(self._text(ctx)) else -1

    def replace(self, ctx, regex, repl):
        text, n = regex.subn(_sed_repl(repl), self._text(ctx), count=1)
        if not n:
            return -1
        self._replace_message(ctx, text)
        return 1

    def subst(self, ctx, regex, repl, count):
        text, n = regex.subn(repl, self._text(ctx), count=count)
        if not n:
            return -1
        self._replace_message(ctx, text)
        return 1

    def append_hf(self, ctx, line):
        name, sep, value = line.partition(":")
        if not sep:
            return -1
        ctx.msg.add_header(name.strip(), value.strip())
        return 1

    def subst_uri(self, ctx, regex, repl, count):
        """sed on the whole R-URI; true if the expression matched (the R-URI is rewritten)."""
        text, n = regex.subn(repl, ctx.ruri, count=count)
        if not n:
            return -1
        ctx.set_ruri(text)
        return 1

    def subst_user(self, ctx, regex, repl, count):
        """sed on the R-URI's user part (empty when it has none); true if it matched.  An empty
        result removes the user part."""
        try:
            uri = URI.parse(ctx.ruri)
        except ParseError:
            return -1
        user, n = regex.subn(repl, uri.user or "", count=count)
        if not n:
            return -1
        uri.user = user or None
        ctx.set_ruri(str(uri))
        return 1

    def remove_hf(self, ctx, name):
        return 1 if ctx.msg.remove_header(name) else -1

    def is_present_hf(self, ctx, name):
        return 1 if ctx.msg.has(name) else -1


EXPORTS = ModuleSpec(
    name="textops",
    doc="Regular expressions and header edits on the message text.",
    factory=Textops,
    functions=(
        Function("search", "search", (1,), ANY_ROUTE, _fix_re, "true if the message matches"),
        Function("replace", "replace", (2,), _REQ, _fix_re, "replace the first match"),
        Function("subst", "subst", (1,), _REQ, _fix_subst, "sed-like /re/repl/flags"),
        Function("append_hf", "append_hf", (1,), _REQ | ANY_ROUTE, _fix_hf,
                 "append a header line", dynamic=True),
        Function("subst_uri", "subst_uri", (1,), _REQ, _fix_subst,
                 "sed-like /re/repl/flags on the Request-URI"),
        Function("subst_user", "subst_user", (1,), _REQ, _fix_subst,
                 "sed-like /re/repl/flags on the Request-URI's user part"),
        Function("remove_hf", "remove_hf", (1,), ANY_ROUTE, _fix_name,
                 "remove every header of that name"),
        Function("is_present_hf", "is_present_hf", (1,), ANY_ROUTE, _fix_name,
                 "true if the header is there"),
    ),
)
