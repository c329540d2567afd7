"""Matching messages to transactions (RFC 3261 17.1.3 and 17.2.3, with the RFC 2543 fallback).

Keys only: the table holds transactions by key and knows nothing of timers or sockets.
"""

from ..sip.headers import MAGIC_COOKIE


def server_key(msg):
    """The key of the server transaction a request belongs to.

    RFC 3261 17.2.3: branch (with the magic cookie), sent-by, and method, ACK matching INVITE.
    Without the cookie (RFC 2543 peers) the key is built from Call-ID, CSeq number, From tag and
    the top Via as a whole, which is what 17.2.3 says to compare in that case.
    """
    via = msg.top_via
    method = msg.method
    if method == "ACK":
        method = "INVITE"
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return (branch, via.host, via.port, method)
    return ("2543", msg.call_id, msg.cseq.number, msg.from_.tag, via.host, via.port,
            branch, method)


def client_key(branch, method):
    """RFC 3261 17.1.3: a response matches the client transaction by top Via branch and the
    CSeq method."""
    return (branch, method)


class TransactionTable:
    __slots__ = ("server", "client")

    def __init__(self):
        self.server = {}    # server_key -> ServerTransaction
        self.client = {}    # client_key -> ClientTransaction

    def __len__(self):
        return len(self.server) + len(self.client)
