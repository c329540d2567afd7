"""A relay session: the media of one call (one dialog) relayed between its two phones.  Pure:
no sockets, every packet and every question carries ``now`` (the loop's monotonic seconds).

A session has, per media stream (``m=`` line, matched by position between offer and answer,
RFC 3264 6), two ``Leg``s: ``legs[CALLER]`` faces the caller, ``legs[CALLEE]`` the callee.  A
leg owns a local port pair on the address of the interface facing its phone (RTP on ``port``,
RTCP on ``port + 1``) and knows where its phone is: first the address its SDP named (or the
SIP source address: a NATed phone's SDP names a private one), then, latching (symmetric RTP,
RFC 4961, "comedia"), the source of the first packet the leg receives, per component (when
the address came from the SIP source, only a packet from that address or the SDP's latches).  After
that only packets from the latched address are relayed (a stray one is counted and dropped);
a new SDP naming another address latches afresh.  A packet received on one leg goes out of
the other leg of the same stream, to that leg's phone (or is dropped, counted, while that
phone's address is unknown: before the answer).

Counters per leg: packets and bytes received from its phone and relayed, dropped ones, the
time of the last one; the session is ``idle`` when no leg has received anything for the
timeout (a phone that vanished, a BYE that never came).
"""

from ..sip.sdp import is_null_address

CALLER, CALLEE = 0, 1
RTP, RTCP = 0, 1


class Leg:
    """One side of one stream; see the module's docstring.  ``peer[c]`` (ip, port) or None,
    for c in (RTP, RTCP)."""

    __slots__ = ("local_ip", "port", "announced", "peer", "latched", "allowed", "packets",
                 "bytes", "dropped", "stray", "last")

    def __init__(self, local_ip, port):
        self.local_ip = local_ip
        self.port = port
        self.announced = [None, None]   # what the phone's last SDP named
        self.peer = [None, None]        # where its media is sent: announced, then latched
        self.latched = [False, False]
        # the addresses a first packet may latch from (its port is learnt), None: any.  The
        # SIP source's and the SDP's: a stranger who guesses the port before the phone sends
        # cannot take the stream, while a NATed phone (its NAT keeps the address, RFC 4787
        # REQ-2) and a provider's media server (the SDP's address) still latch
        self.allowed = None
        self.packets = 0
        self.bytes = 0
        self.dropped = 0        # relayed nowhere: the other phone's address not yet known
        self.stray = 0          # from another address than the latched one
        self.last = None

    def announce(self, rtp, rtcp, allowed=None):
        """The phone's SDP names (ip, port) for RTP and RTCP (None: not known): an address
        other than the one named before latches afresh (a re-INVITE moved the media); the
        same one keeps what was latched."""
        self.allowed = allowed
        for c, addr in ((RTP, rtp), (RTCP, rtcp)):
            if addr is not None and addr != self.announced[c]:
                self.announced[c] = addr
                self.peer[c] = addr
                self.latched[c] = False

    def accept(self, component, source, symmetric):
        """Whether a packet from ``source`` (ip, port) on this leg's ``component`` socket is
        the phone's: the first one latches (``symmetric``), later ones must come from there."""
        if not symmetric:
            return True
        if not self.latched[component]:
            if self.allowed is not None and source[0] not in self.allowed:
                self.stray += 1
                return False
            self.peer[component] = source
            self.latched[component] = True
            return True
        if source == self.peer[component]:
            return True
        self.stray += 1
        return False

    def as_dict(self):
        peer = self.peer[RTP]
        return {"local": f"{self.local_ip}:{self.port}",
                "peer": f"{peer[0]}:{peer[1]}" if peer else None,
                "latched": self.latched[RTP], "packets": self.packets, "bytes": self.bytes,
                "dropped": self.dropped, "stray": self.stray}


class RelaySession:
    """The relayed media of one call; see the module's docstring.  ``local_ip[side]``: the
    relay's address facing that side (the caller's: the listener its INVITE came in on; the
    callee's: the one the INVITE left by)."""

    __slots__ = ("call_id", "from_tag", "local_ip", "streams", "created", "symmetric",
                 "answered", "hinted", "__weakref__")

    def __init__(self, call_id, from_tag, caller_ip, callee_ip, now, symmetric=True):
        self.call_id = call_id
        self.from_tag = from_tag
        self.local_ip = (caller_ip, callee_ip)
        self.streams = []           # [Leg facing the caller, Leg facing the callee] per m=
        self.created = now
        self.symmetric = symmetric  # latch (Kamailio's default; flag "a": asymmetric)
        self.answered = None        # when the call was answered (a 2xx), None: not yet
        self.hinted = False         # the one-way audio hint was given

    def silent_sides(self, now, after):
        """Once per session, ``after`` seconds after the answer: the sides (CALLER, CALLEE)
        from which nothing at all came in, on any leg (the classic one-way audio: that phone's
        NAT or firewall drops its media, or its SDP named an address it does not send from).
        Empty before then, and every time after the first answer."""
        if self.hinted or self.answered is None or now - self.answered < after \
                or not self.streams:
            return ()
        self.hinted = True
        return tuple(side for side in (CALLER, CALLEE)
                     if not any(legs[side].last is not None or legs[side].stray
                                for legs in self.streams))

    def add_stream(self, caller_port, callee_port):
        """A new stream relayed between these two local ports (from the PortPool)."""
        self.streams.append((Leg(self.local_ip[CALLER], caller_port),
                             Leg(self.local_ip[CALLEE], callee_port)))

    def side_of(self, from_tag, is_request):
        """Which side sent a message of this call: a request whose From tag is the caller's
        came from the caller (else from the callee: From and To swap, RFC 3261 12.2.1.1); a
        response came from the side its request went to."""
        caller_sent = from_tag == self.from_tag
        if not is_request:
            caller_sent = not caller_sent
        return CALLER if caller_sent else CALLEE

    def learn(self, side, sdp_streams, source_ip=None):
        """``side``'s SDP (its ``Stream``s, serlite.media.sdp) names where its media is;
        ``source_ip`` (the SIP message's source) instead of the SDP's address, unless None
        (Kamailio's flag "r": trust the SDP).  A stream disabled (port 0) keeps what it had."""
        for i, s in enumerate(sdp_streams[:len(self.streams)]):
            if not s.port:
                continue
            if s.address is None or is_null_address(s.address.encode("latin-1")):
                continue        # on hold the RFC 2543 way: nothing to send there
            ip = source_ip or s.address
            rtcp_ip = source_ip or s.rtcp_address
            allowed = None if source_ip is None else (source_ip, s.address, s.rtcp_address)
            self.streams[i][side].announce((ip, s.port), (rtcp_ip or ip, s.rtcp_port), allowed)

    def ports(self, side):
        """The relay's RTP port per stream on ``side`` (what that side's SDP names)."""
        return [legs[side].port for legs in self.streams]

    def relay(self, index, side, component, source, size, now):
        """A packet of ``size`` bytes from ``source`` came in on stream ``index``'s leg facing
        ``side``, on its ``component`` socket: the (ip, port) to send it to from the other
        leg's socket of the same component, or None (dropped: stray, or nowhere to go)."""
        legs = self.streams[index]
        leg = legs[side]
        if not leg.accept(component, source, self.symmetric):
            return None
        leg.last = now
        dest = legs[1 - side].peer[component]
        if dest is None:
            leg.dropped += 1
            return None
        leg.packets += 1
        leg.bytes += size
        return dest

    def last_packet(self):
        """The time of the last packet received on any leg, None if none yet."""
        times = [leg.last for legs in self.streams for leg in legs if leg.last is not None]
        return max(times) if times else None

    def idle(self, now, timeout):
        """True when nothing came in on any leg for ``timeout`` seconds (nor since the
        session was made, if nothing ever came)."""
        last = self.last_packet()
        return now - (self.created if last is None else last) >= timeout

    def totals(self):
        """(packets, bytes) relayed from the caller, then from the callee."""
        out = []
        for side in (CALLER, CALLEE):
            out.append((sum(legs[side].packets for legs in self.streams),
                        sum(legs[side].bytes for legs in self.streams)))
        return out

    def side_silent(self, side, now, after):
        """Whether ``side`` is silent now: the call was answered ``after`` seconds ago or
        more and nothing came from that side (on any leg) in the last ``after`` seconds (the
        one-way audio the hint of ``silent_sides`` logs once, shown while it lasts; a phone
        holding with ``inactive`` is silent too).  Asks, changes nothing."""
        if self.answered is None or now - self.answered < after:
            return False
        times = [legs[side].last for legs in self.streams if legs[side].last is not None]
        return not times or now - max(times) >= after

    def as_dict(self, now, after=None, legs=True):
        """Plain data for the control socket; with ``after`` (seconds) each side says
        whether it is silent (``side_silent``); ``legs``: each stream's legs too."""
        (pa, ba), (pb, bb) = self.totals()
        last = self.last_packet()
        sides = [{"packets": pa, "bytes": ba}, {"packets": pb, "bytes": bb}]
        if after is not None:
            for side, entry in zip((CALLER, CALLEE), sides):
                entry["silent"] = self.side_silent(side, now, after)
        out = {"call_id": self.call_id, "age": round(now - self.created, 3),
               "silent": round(now - (last if last is not None else self.created), 3),
               "answered": self.answered is not None,
               "from_caller": sides[CALLER],
               "from_callee": sides[CALLEE]}
        if legs:
            out["streams"] = [[pair[CALLER].as_dict(), pair[CALLEE].as_dict()]
                              for pair in self.streams]
        return out

