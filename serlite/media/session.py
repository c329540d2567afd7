"""A relay session: the media of one call relayed between the caller and the phone(s) that
answer it.  Pure: no sockets, every packet and every question carries ``now`` (the loop's
monotonic seconds).

An INVITE may fork (two phones registered for one account, RFC 3261 16.6): each branch that
answers with SDP (a 183 with early media, a 2xx) is a ``Fork``, named by its To tag (the
callee's tag of that early or confirmed dialog, RFC 3261 12.1), as rtpengine keeps a
"monologue" per tag.  Per media stream (``m=`` line, matched by position between offer and
answer, RFC 3264 6) a ``Stream`` has one port pair facing the callees, named in the INVITE's
SDP (rewritten once, before tm forks it, so every branch shares it), and each fork has, per
stream, a pair of ``Leg``s: one facing the caller on a port pair of its own (what that fork's
answer names to the caller: the caller's packets to it go to that fork), one facing that
fork's phone on the stream's shared port.  A packet on the shared port belongs to the fork
whose phone sent it: the one latched to its source, else the first not yet latched whose SIP
or SDP address is the source's (``Stream.fork_of``).

A leg knows where its phone is: first the address its SDP named (or the SIP source address: a
NATed phone's SDP names a private one), then, latching (symmetric RTP, RFC 4961, "comedia"),
the source of the first packet the leg receives, per component (when the address came from
the SIP source, only a packet from that address or the SDP's latches).  After that only
packets from the latched address are relayed (a stray one is counted and dropped); a new SDP
naming another address latches afresh.  A packet received on one leg of a fork goes out of
the fork's other leg of the same stream, to that leg's phone (or is dropped, counted, while
that phone's address is unknown: before the answer).  The caller's offer is kept per stream
(``Stream.caller``) for the forks that answer later.

When the call is answered the other forks are closed (``unanswered``: the I/O edge gives
their ports back); a fork that sent a 2xx too (RFC 3261 13.2.2.4: its UAC ACKs and BYEs it)
lives until its own BYE.  At most ``MAX_FORKS`` forks per call.

Counters per leg: packets and bytes received from its phone and relayed, dropped ones, the
time of the last one; the session is ``idle`` when no leg has received anything for the
timeout (a phone that vanished, a BYE that never came).
"""

from ..sip.sdp import is_null_address

CALLER, CALLEE = 0, 1
RTP, RTCP = 0, 1
MAX_FORKS = 8       # answering branches relayed per call (each holds a port pair a stream)


class Leg:
    """One side of one stream; see the module's docstring.  ``peer[c]`` (ip, port) or None,
    for c in (RTP, RTCP)."""

    __slots__ = ("local_ip", "port", "announced", "peer", "latched", "allowed", "packets",
                 "bytes", "dropped", "stray", "last", "io")

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
        self.io = None          # the I/O edge's (serlite.relay): this leg's sockets

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

    def claims(self, component, source):
        """Whether a packet from ``source`` on the stream's shared port may be this leg's
        phone's, when several forks share it: from the address it latched, or (not latched
        yet) from its SIP source's or SDP's address (any of the ``allowed``), or, trusting
        the SDP (flag ``r``), the address its SDP named."""
        if self.latched[component]:
            return source == self.peer[component]
        if self.allowed is not None:
            return source[0] in self.allowed
        peer = self.peer[component]
        return peer is not None and peer[0] == source[0]


class Stream:
    """One ``m=`` line: the port pair facing the callees (shared by the forks, on the
    address the INVITE left by), and each fork's pair of legs for it."""

    __slots__ = ("port", "pairs", "caller", "stray", "io")

    def __init__(self, port):
        self.port = port
        self.pairs = []         # [Leg facing the caller, Leg facing the callee] per fork
        self.caller = None      # the caller's offer: (rtp, rtcp, allowed) for the next fork
        self.stray = 0          # on the shared port from no fork's phone
        self.io = None          # the I/O edge's: the shared port's sockets

    def fork_of(self, component, source):
        """The pair of legs a packet on the shared port belongs to, or None (counted): with
        one fork, that one (its leg's latching decides); with several, the fork whose phone
        sent it (``Leg.claims``: the latched one first, then one that may latch)."""
        pairs = self.pairs
        if len(pairs) == 1:
            return pairs[0]
        for pair in pairs:
            leg = pair[CALLEE]
            if leg.latched[component] and leg.peer[component] == source:
                return pair
        for pair in pairs:
            if pair[CALLEE].claims(component, source):
                return pair
        self.stray += 1
        return None


class Fork:
    """One answering branch (its To tag): per stream, [Leg facing the caller, Leg facing its
    phone]; ``answered`` once a 2xx came with its tag."""

    __slots__ = ("tag", "pairs", "answered")

    def __init__(self, tag):
        self.tag = tag
        self.pairs = []
        self.answered = False


class RelaySession:
    """The relayed media of one call; see the module's docstring.  ``local_ip[side]``: the
    relay's address facing that side (the caller's: the listener its INVITE came in on; the
    callees': the one the INVITE left by)."""

    __slots__ = ("call_id", "from_tag", "local_ip", "streams", "forks", "created",
                 "symmetric", "answered", "hinted", "__weakref__")

    def __init__(self, call_id, from_tag, caller_ip, callee_ip, now, symmetric=True):
        self.call_id = call_id
        self.from_tag = from_tag
        self.local_ip = (caller_ip, callee_ip)
        self.streams = []           # Stream per m=
        self.forks = {}             # To tag -> Fork, in the order they answered
        self.created = now
        self.symmetric = symmetric  # latch (Kamailio's default; flag "a": asymmetric)
        self.answered = None        # when the call was answered (a 2xx), None: not yet
        self.hinted = False         # the one-way audio hint was given

    def _legs(self):
        return [leg for fork in self.forks.values() for pair in fork.pairs for leg in pair]

    def silent_sides(self, now, after):
        """Once per session, ``after`` seconds after the answer: the sides (CALLER, CALLEE)
        from which nothing at all came in, on any leg (the classic one-way audio: that phone's
        NAT or firewall drops its media, or its SDP named an address it does not send from).
        Empty before then, and every time after the first answer."""
        if self.hinted or self.answered is None or now - self.answered < after \
                or not self.forks:
            return ()
        self.hinted = True
        return tuple(side for side in (CALLER, CALLEE)
                     if not any(pair[side].last is not None or pair[side].stray
                                for fork in self.forks.values() for pair in fork.pairs)
                     and not (side == CALLEE and any(s.stray for s in self.streams)))

    # -- streams and forks (the I/O edge binds their ports) ---------------------------------
    def add_stream(self, port, caller_ports=()):
        """A new stream whose callee-facing port is ``port``; ``caller_ports``: the
        caller-facing port of each fork (in ``forks`` order) for it."""
        stream = Stream(port)
        for fork, caller_port in zip(tuple(self.forks.values()), caller_ports):
            self._pair(fork, stream, caller_port)
        self.streams.append(stream)
        return stream

    def drop_stream(self):
        """Take the last stream back (its legs, from every fork); the Stream."""
        stream = self.streams.pop()
        for fork in self.forks.values():
            fork.pairs.pop()
        return stream

    def _pair(self, fork, stream, caller_port):
        pair = [Leg(self.local_ip[CALLER], caller_port), Leg(self.local_ip[CALLEE], stream.port)]
        if stream.caller is not None:
            pair[CALLER].announce(*stream.caller)
        fork.pairs.append(pair)
        stream.pairs.append(pair)
        return pair

    def add_fork(self, tag, caller_ports):
        """The branch whose To tag is ``tag`` answered with SDP: its legs, one per stream,
        facing the caller on ``caller_ports``.  The Fork (the I/O edge checks MAX_FORKS)."""
        fork = self.forks[tag] = Fork(tag)
        for stream, port in zip(self.streams, caller_ports):
            self._pair(fork, stream, port)
        return fork

    def drop_fork(self, tag):
        """Forget fork ``tag`` (its legs leave their streams); the Fork, or None."""
        fork = self.forks.pop(tag, None)
        if fork is not None:
            for stream, pair in zip(self.streams, fork.pairs):
                stream.pairs.remove(pair)
        return fork

    def unanswered(self, tag):
        """The tags of the forks to close now that ``tag``'s 2xx answered the call: the
        others that sent no 2xx (RFC 3261 13.2.2.4: one that did lives until its BYE)."""
        return [t for t, fork in self.forks.items() if t != tag and not fork.answered]

    # -- signalling --------------------------------------------------------------------------
    def side_of(self, from_tag, is_request):
        """Which side sent a message of this call: a request whose From tag is the caller's
        came from the caller (else from the callee: From and To swap, RFC 3261 12.2.1.1); a
        response came from the side its request went to."""
        caller_sent = from_tag == self.from_tag
        if not is_request:
            caller_sent = not caller_sent
        return CALLER if caller_sent else CALLEE

    def fork_tag(self, from_tag, to_tag):
        """The callee's tag of a message of this call (its fork): the To tag of the caller's
        requests and of their responses, the From tag of the callee's; None for the INVITE
        (no To tag yet: every fork)."""
        return to_tag if from_tag == self.from_tag else from_tag

    def learn(self, side, tag, sdp_streams, source_ip=None):
        """``side``'s SDP (its ``Stream``s, serlite.media.sdp) names where its media is, for
        fork ``tag`` (the caller's with tag None: the offer, for every fork); ``source_ip``
        (the SIP message's source) instead of the SDP's address, unless None (Kamailio's flag
        "r": trust the SDP).  A stream disabled (port 0) keeps what it had."""
        fork = self.forks.get(tag) if tag is not None else None
        for i, s in enumerate(sdp_streams[:len(self.streams)]):
            if not s.port:
                continue
            if s.address is None or is_null_address(s.address.encode("latin-1")):
                continue        # on hold the RFC 2543 way: nothing to send there
            ip = source_ip or s.address
            rtcp_ip = source_ip or s.rtcp_address
            allowed = None if source_ip is None else (source_ip, s.address, s.rtcp_address)
            said = ((ip, s.port), (rtcp_ip or ip, s.rtcp_port), allowed)
            if fork is not None:
                fork.pairs[i][side].announce(*said)
            elif side == CALLER and tag is None:
                stream = self.streams[i]
                stream.caller = said
                for pair in stream.pairs:
                    pair[CALLER].announce(*said)

    def ports(self, side, tag=None):
        """The relay's RTP port per stream on ``side`` (what that side's SDP names): the
        shared ones facing the callees, fork ``tag``'s facing the caller."""
        if side == CALLEE:
            return [stream.port for stream in self.streams]
        return [pair[CALLER].port for pair in self.forks[tag].pairs]

    # -- packets -----------------------------------------------------------------------------
    def from_caller(self, pair, component, source, size, now):
        """A packet of ``size`` bytes from ``source`` came in on a fork's caller-facing
        ``component`` socket (``pair``: that fork's legs of the stream): the (ip, port) to
        send it to from the stream's shared socket, or None (dropped: stray, or nowhere to
        go)."""
        leg = pair[CALLER]
        if not leg.accept(component, source, self.symmetric):
            return None
        leg.last = now
        dest = pair[CALLEE].peer[component]
        if dest is None:
            leg.dropped += 1
            return None
        leg.packets += 1
        leg.bytes += size
        return dest

    def from_callee(self, stream, component, source, size, now):
        """A packet came in on ``stream``'s shared callee-facing ``component`` socket: the
        caller-facing Leg of the fork whose phone sent it (send from its ``io[component]`` to
        its ``peer[component]``), or None (dropped)."""
        pair = stream.fork_of(component, source)
        if pair is None:
            return None
        leg = pair[CALLEE]
        if not leg.accept(component, source, self.symmetric):
            return None
        leg.last = now
        out = pair[CALLER]
        if out.peer[component] is None:
            leg.dropped += 1
            return None
        leg.packets += 1
        leg.bytes += size
        return out

    # -- silence and counters ---------------------------------------------------------------
    def last_packet(self):
        """The time of the last packet received on any leg, None if none yet."""
        times = [leg.last for leg in self._legs() if leg.last is not None]
        return max(times) if times else None

    def idle(self, now, timeout, ringing=0.0):
        """True when nothing came in on any leg for ``timeout`` seconds (nor since the
        session was made, if nothing ever came).  A call not answered yet is silent while it
        rings (no early media): it is idle only after ``ringing`` seconds too, as long as
        its INVITE may wait for an answer (tm's fr_inv_timer), so that a call ringing longer
        than ``timeout`` still has its relay when it is answered."""
        if self.answered is None and ringing > timeout:
            timeout = ringing
        last = self.last_packet()
        return now - (self.created if last is None else last) >= timeout

    def totals(self):
        """(packets, bytes) relayed from the caller, then from the callee(s)."""
        out = []
        for side in (CALLER, CALLEE):
            legs = [pair[side] for fork in self.forks.values() for pair in fork.pairs]
            out.append((sum(leg.packets for leg in legs), sum(leg.bytes for leg in legs)))
        return out

    def side_silent(self, side, now, after):
        """Whether ``side`` is silent now: the call was answered ``after`` seconds ago or
        more and nothing came from that side (on any leg) in the last ``after`` seconds (the
        one-way audio the hint of ``silent_sides`` logs once, shown while it lasts; a phone
        holding with ``inactive`` is silent too).  Asks, changes nothing."""
        if self.answered is None or now - self.answered < after:
            return False
        times = [pair[side].last for fork in self.forks.values() for pair in fork.pairs
                 if pair[side].last is not None]
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
            forks = [{"tag": fork.tag, "answered": fork.answered,
                      "streams": [[pair[CALLER].as_dict(), pair[CALLEE].as_dict()]
                                  for pair in fork.pairs]} for fork in self.forks.values()]
            # the first fork's legs (the answered one, once the others are closed)
            out["streams"] = forks[0]["streams"] if forks else []
            out["forks"] = forks
        return out

