"""Matching messages to transactions (RFC 3261 17.1.3 and 17.2.3, with the RFC 2543 fallback).

Keys only: the table holds transactions by key and knows nothing of timers or sockets.
"""

from ..sip.headers import MAGIC_COOKIE


def server_key(msg, method=None):
    """The key of the server transaction a request belongs to (``method``: of another
    transaction of the same request, e.g. the INVITE a CANCEL cancels).

    RFC 3261 17.2.3: branch (with the magic cookie), sent-by, and method, ACK matching INVITE.
    Without the cookie (RFC 2543 peers) the key is built from Call-ID, CSeq number, From tag and
    the top Via as a whole, which is what 17.2.3 says to compare in that case.  One string
    rather than a tuple: a finished transaction is kept 32 s, and the joined string costs
    about half of a tuple of its parts.  A NUL inside a part could only make a key equal to
    one whose parts the sender knows already, which repeating them does as well.
    """
    via = msg.top_via
    if method is None:
        method = msg.method
        if method == "ACK":
            method = "INVITE"
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return f"{branch}\0{via.host}\0{via.port}\0{method}"
    return (f"2543\0{msg.call_id}\0{msg.cseq.number}\0{msg.from_.tag}\0{via.host}\0"
            f"{via.port}\0{branch}\0{method}")


def client_key(branch, method):
    """RFC 3261 17.1.3: a response matches the client transaction by top Via branch and the
    CSeq method."""
    return f"{branch}\0{method}"


class TransactionTable:
    __slots__ = ("server", "client")

    def __init__(self):
        self.server = {}    # server_key -> ServerTransaction
        self.client = {}    # client_key -> ClientTransaction

    def __len__(self):
        return len(self.server) + len(self.client)
