"""maxfwd: ``mf_process_maxfwd_header(max)`` (RFC 3261 16.3 step 3, 16.6 step 3).

The core decrements Max-Forwards whenever it forwards (and refuses 0 with 483 whatever the script
says), so this function only checks and caps: false (-1) when the value is 0, so the script can
answer 483 itself; a missing header is added with ``max``; a larger value is lowered to ``max``.
"""

from .export import REQUEST_ROUTE, Function, Module, ModuleSpec


def _fix_max(module, args, script):
    try:
        value = int(args[0])
    except (TypeError, ValueError):
        raise ValueError(f"max must be a number, not {args[0]!r}")
    if not 0 < value < 256:
        raise ValueError(f"max must be between 1 and 255, not {value}")
    return (value,)


class Maxfwd(Module):
    name = "maxfwd"

    def process(self, ctx, limit):
        msg = ctx.msg
        value = msg.max_forwards
        if value is None:
            msg.set_max_forwards(limit)
            return 1
        if value == 0:
            return -1
        if value > limit:
            msg.set_max_forwards(limit)
        return 1


EXPORTS = ModuleSpec(
    name="maxfwd",
    doc="The Max-Forwards check that stops loops (RFC 3261 16.3).",
    factory=Maxfwd,
    functions=(
        Function("mf_process_maxfwd_header", "process", (1,), REQUEST_ROUTE, _fix_max,
                 "false if Max-Forwards is 0; adds or caps it otherwise"),
    ),
)
