"""The response context of a stateful proxy (RFC 3261 16.7): the branches of one server
transaction and the choice of the best final response."""

# RFC 3261 16.7 step 6: among 4xx, these carry information the UAC can act on.
_PREFERRED_4XX = (401, 407, 415, 420, 484)


class BranchState:
    """One forwarded copy of the request (a client transaction's caller data)."""

    __slots__ = ("rc", "uri", "proto", "ip", "port", "listener", "sent", "client",
                 "final", "reason", "response", "cancelled", "failover")

    def __init__(self, rc, uri, proto, ip, port, listener, sent):
        self.rc = rc                # the ResponseContext this branch belongs to
        self.uri = uri
        self.proto = proto
        self.ip = ip
        self.port = port
        self.listener = listener
        self.sent = sent            # the bytes of the request on this branch
        self.client = None          # its ClientTransaction
        self.final = 0              # final status received (or made up: 408 on timeout ...)
        self.reason = ""            # the reason phrase of a made-up final status
        self.response = None        # the final Response, None when made up locally
        self.cancelled = False
        # a name's RFC 3263 targets not tried yet: (targets, the request's bytes without
        # request line and Via, the inbound socket, the name), until the target answers
        self.failover = None


class ResponseContext:
    """What tm keeps per proxied request: its server transaction, the request context, the
    branches, and the routes the script armed."""

    __slots__ = ("server", "ctx", "branches", "answered", "failure_route", "reply_route",
                 "branch_route", "fr_timer", "fr_inv_timer", "max_forwards", "relayed",
                 "cancelled", "in_failure", "contact_groups", "dialog", "branch_headers",
                 "reply_headers", "held", "held_up")

    def __init__(self, server, ctx):
        self.server = server
        self.ctx = ctx              # the request's Context; None once released
        self.branches = []
        self.answered = 0           # final status sent upstream (0: none yet)
        self.failure_route = None
        self.reply_route = None
        self.branch_route = None
        self.fr_timer = None
        self.fr_inv_timer = None
        self.max_forwards = None    # as received: every relay of this request starts from it
        self.relayed = False        # t_relay ran for it
        self.cancelled = False      # a CANCEL for it came in (t_was_cancelled)
        self.in_failure = False     # its failure_route is running
        self.contact_groups = ()    # t_load_contacts: the destinations left, by q (serial fork)
        self.dialog = None          # the call an INVITE started (serlite.dialog), if tracked
        # uac's edits, None unless a module asks: header -> value on the branches only (the
        # request, its local replies and the routes keep their own: uac_auth's CSeq + 1,
        # uac_replace_from's From), and header -> value (or callable(reply) -> value) on the
        # responses relayed upstream (the caller's own CSeq and From back)
        self.branch_headers = None
        self.reply_headers = None
        # sends waiting for a Hold (proxy/hold.py): branches not sent yet (they count as
        # pending), and responses for upstream in the order they came ([ready, send] each)
        self.held = 0
        self.held_up = None

    def release(self):
        """A final response went upstream: nothing reads the request, its context or the
        branches' responses any more (failure_route and local replies come before it), so let
        them go.  The transaction lives on for 32 s with what retransmissions and further 2xx
        need, and the messages are freed now rather than by the garbage collector later."""
        self.ctx = None
        for b in self.branches:
            b.response = None
        # only branches still waiting matter now (a CANCEL, or the 2xx that cancels them);
        # none, most often: the shared empty tuple then (tm relays no answered request)
        self.branches = [b for b in self.branches if not b.final] or ()

    def pending(self):
        return [b for b in self.branches if not b.final]

    def all_final(self):
        return not self.held and all(b.final for b in self.branches)


def best_response(branches):
    """RFC 3261 16.7 step 6: a 6xx if any; else the lowest class; 4xx prefers the statuses the
    UAC can act on.  Returns the BranchState whose final response goes upstream."""
    finals = [b for b in branches if b.final >= 300]
    if not finals:
        return None
    six = [b for b in finals if b.final >= 600]
    if six:
        return six[0]
    lowest = min(b.final // 100 for b in finals)
    candidates = [b for b in finals if b.final // 100 == lowest]
    if lowest == 4:
        for status in _PREFERRED_4XX:
            for b in candidates:
                if b.final == status:
                    return b
    return candidates[0]
