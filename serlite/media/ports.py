"""The relay's RTP ports: a bounded pool of even ports, RTCP on the next one (RFC 3550 11:
RTP on an even port, RTCP on the odd one above).  Pure: the pool only counts; binding the
sockets is serlite/relay.py's, which gives back a port it could not bind and takes another."""

from collections import deque


class PortsExhausted(Exception):
    """No free port pair: every one of the range is in use by a relayed call."""


class PortPool:
    """Even ports ``low``..``high`` (``low`` rounded up to even; a pair needs ``port + 1 <=
    high``).  A port given back goes to the end of the queue, so that a late packet of the
    call that had it is not taken for the next call's (the longest time before reuse)."""

    __slots__ = ("low", "high", "free", "used")

    def __init__(self, low, high):
        low += low & 1
        if low + 1 > high:
            raise ValueError(f"RTP port range {low}-{high} holds no even/odd pair")
        self.low, self.high = low, high
        self.free = deque(range(low, high, 2))
        self.used = set()

    @property
    def size(self):
        return len(self.free) + len(self.used)

    def take(self):
        """An even port whose pair is now in use; PortsExhausted when none is free."""
        if not self.free:
            raise PortsExhausted(f"no free RTP port in {self.low}-{self.high}: all "
                                 f"{len(self.used)} pairs are in use")
        port = self.free.popleft()
        self.used.add(port)
        return port

    def give(self, port):
        """``port`` (from ``take``) is free again; a port not in use is ignored."""
        if port in self.used:
            self.used.remove(port)
            self.free.append(port)
