"""sl: stateless replies (SER's sl module): ``sl_send_reply(code, reason)``.

``sl_reply`` is the name SER 0.9 used; the SER seed config still calls it.
"""

from .export import FAILURE_ROUTE, REQUEST_ROUTE, Function, Module, ModuleSpec


def fix_reply(module, args, script):
    """Shared with tm's t_reply: a status 100-699 and a reason phrase."""
    try:
        code = int(args[0])
    except (TypeError, ValueError):
        raise ValueError(f"reply code must be a number, not {args[0]!r}")
    if not 100 <= code <= 699:
        raise ValueError(f"reply code {code} is not between 100 and 699")
    reason = str(args[1])
    if "\r" in reason or "\n" in reason:
        raise ValueError("reply reason must be one line")
    return (code, reason)


class Sl(Module):
    name = "sl"

    def send_reply(self, ctx, code, reason):
        headers = redirect_contacts(ctx) if 300 <= code < 400 else ()
        if ctx.route_type == FAILURE_ROUTE:     # the transaction's reply, whatever sl says
            return 1 if self.core.send_reply(ctx, code, reason, headers) else -1
        return 1 if self.core.reply(ctx, code, reason, headers) else -1


    def reply_error(self, ctx):
        """SER's ``sl_reply_error``: answer a request the script could not handle (SER sends a
        reply for its last internal error; serlite's functions report theirs in the log)."""
        if ctx.replied:
            return 1
        return 1 if self.core.reply(ctx, 500, "Server Internal Error") else -1


def redirect_contacts(ctx):
    """A 3xx lists the destination set as Contact headers with q-values (SER's redirect server:
    ``lookup(); sl_send_reply("302", ...)``)."""
    if ctx.new_uri is None and not ctx.branches:
        return ()
    out = []
    for uri, q in [(ctx.ruri, ctx.q)] + [(b.uri, b.q) for b in ctx.branches]:
        out.append(("Contact", f"<{uri}>" + (f";q={q / 1000:.3g}" if q is not None and q >= 0
                                             else "")))
    return out


EXPORTS = ModuleSpec(
    name="sl",
    doc="Stateless replies.",
    factory=Sl,
    functions=(
        Function("sl_send_reply", "send_reply", (2,), REQUEST_ROUTE | FAILURE_ROUTE, fix_reply,
                 "send a stateless reply", dynamic=True),
        Function("sl_reply", "send_reply", (2,), REQUEST_ROUTE | FAILURE_ROUTE, fix_reply,
                 "SER 0.9's name of sl_send_reply", dynamic=True),
        Function("sl_reply_error", "reply_error", (0,), REQUEST_ROUTE | FAILURE_ROUTE,
                 doc="answer 500 unless already answered"),
    ),
)
