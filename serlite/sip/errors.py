"""Errors of the SIP message layer.

``ParseError`` is raised for bytes a peer sent that are not a valid SIP message (or a header
field value that does not follow its grammar).  It carries the status code a server answers a
request with (400 Bad Request by default; 505, 513, 416 ... where RFC 3261 says so), in the way
h11's ``ProtocolError`` carries ``error_status_hint``.  Anything else raised by this package is a
bug of ours, never the peer's fault.
"""


class ParseError(Exception):
    """A malformed or unacceptable SIP message; ``status`` is the SIP reply code to answer with."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason, status)
        self.reason = reason
        self.status = status

    def __str__(self):
        return f"{self.status} {self.reason}"
