"""Every RFC 4475 torture message, sent over UDP to a running serlite.

What is checked, per message (the expectations come from INDEX.tsv's kind column):
- invalid requests get 400 (505 for badvers.dat) or no answer, and are never forwarded;
- responses (none of them is for serlite) are dropped: no answer, nothing forwarded;
- valid requests get a reaction, an answer or a forward;
- after every message serlite still answers an OPTIONS, and it is still running at the end.

Containment: configs/rfc4475.cfg makes every domain these messages route on an alias, so no
DNS lookup is needed, and refuses what is not for it; the only bindings are the ones this
test registers, for the Request-URI users of the messages, all pointing at the test's own
UDP socket ("the next hop"). Whatever serlite forwards arrives there. The REGISTERs among
the messages are sent last, so the contacts they carry are never used for forwarding.

Where answers go: serlite adds received= to the top Via (its host is not the source), so
an answer goes to the source address and the sent-by port (5060 when none), or to the
source port under rport. The messages are therefore sent from 127.0.0.N:<their sent-by
port>, N random, so both land on the same socket. A message whose top Via says TCP is
still answered over UDP, the transport it came on.

No waiting on silence: after each message an OPTIONS probe goes out from another socket and
its answer is awaited. serlite handles datagrams in order, so by then any answer to, or
forward of, the message has been sent; what arrived is matched to messages by Call-ID.
"""

import random
import re
import secrets
from typing import NamedTuple, Optional

from . import sipnet

CONFIG = (sipnet.CONFIGS / "rfc4475.cfg").read_text()
# Request-URI users of the invalid requests: bound to the next hop, so a forward would show.
TARGET_USERS = ("user", "t.watson", "remote-target")


def data_dir():
    return sipnet.REPO / "tests" / "data" / "rfc4475"


def load_index(directory):
    index = {}
    for line in (directory / "INDEX.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, section, kind, note = line.split("\t", 3)
            index[name] = (section, kind, note)
    return index


class Expect(NamedTuple):
    replies: Optional[frozenset]  # allowed status codes; None: any
    forward: bool                 # may it reach the next hop?
    react: bool                   # must it be answered or forwarded?


ANY = Expect(None, True, True)
DROP = Expect(frozenset(), False, False)
BAD_REQUEST = Expect(frozenset({400}), False, True)
SPECIAL = {
    "badvers.dat": Expect(frozenset({505}), False, True),
    # Semantic, but malformed enough that 400 is the answer (3.3.1, 3.3.8, 3.3.9).
    "insuf.dat": BAD_REQUEST,
    "multi01.dat": BAD_REQUEST,
    "mcl01.dat": BAD_REQUEST,
    # Cannot be routed: 416 Unsupported URI Scheme (3.3.2, 3.3.3).
    "unkscm.dat": Expect(frozenset({416}), False, True),
    "novelsc.dat": Expect(frozenset({416}), False, True),
    # Must not be forwarded: 483 Too Many Hops (3.3.11).
    "zeromf.dat": Expect(frozenset({483}), False, True),
    # Proxy-Require of an extension serlite lacks: 420 Bad Extension (3.3.5).
    "bext01.dat": Expect(frozenset({420}), False, True),
    # A REGISTER whose To is an isbn: URI cannot name an address of record.
    "unksm2.dat": Expect(frozenset({416}), False, True),
}


def expectation(name, kind, data):
    if data.startswith(b"SIP/"):
        return DROP
    if name in SPECIAL:
        return SPECIAL[name]
    return BAD_REQUEST if kind == "invalid" else ANY


def unfolded_headers(data):
    head = re.sub(rb"\r\n[ \t]+", b" ", data.split(b"\r\n\r\n", 1)[0])
    return head.split(b"\r\n")[1:]


def top_via(data):
    """(transport, sent-by port) of the first Via, as far as a torture message allows."""
    for line in unfolded_headers(data):
        if re.match(rb"(?i)(via|v)\s*:", line):
            m = re.match(rb"(?i)(?:via|v)\s*:\s*SIP\s*/\s*[\d.]+\s*/\s*(\w+)\s+([^;,\s]+)", line)
            if not m:
                return "UDP", 5060
            host = m.group(2).decode("latin-1")
            port = re.search(r":(\d+)$", host.rsplit("]", 1)[-1])
            return m.group(1).decode().upper(), int(port.group(1)) if port else 5060
    return "UDP", 5060


def top_branch(data):
    for line in unfolded_headers(data):
        if re.match(rb"(?i)(via|v)\s*:", line):
            m = re.search(rb";\s*branch\s*=\s*([^;,\s]+)", line)
            return m.group(1) if m else None
    return None


def call_ids(msg):
    return set(sipnet.header_values(msg, "call-id"))


def bind_torture_peers(ports):
    """UDP sockets on one random 127.0.0.N (N > 1), one per sent-by port."""
    for n in random.sample(range(2, 255), 30):
        peers = {}
        try:
            for port in sorted(ports):
                peers[port] = sipnet.UdpPeer(sipnet.V4, f"127.0.0.{n}", port)
            return peers
        except OSError:
            for peer in peers.values():
                peer.close()
    raise AssertionError(f"could not bind UDP ports {sorted(ports)} on any 127.0.0.N: "
                         "is a SIP server running on this machine?")


def test_rfc4475_messages_live(ser, tmp_path):
    directory = data_dir()
    index = load_index(directory)
    messages = {name: (directory / name).read_bytes() for name in index}
    assert len(messages) == 49, f"{directory}: {len(messages)} messages in INDEX.tsv"
    # Everything that does not register first, the REGISTERs last.
    order = sorted(messages, key=lambda n: (messages[n].startswith(b"REGISTER "), n))

    server = ser(CONFIG)
    sink = sipnet.UdpPeer()
    probe = sipnet.UdpPeer()
    peers = bind_torture_peers({top_via(data)[1] for data in messages.values()})
    try:
        for user in TARGET_USERS:
            sipnet.register(server.addr, user, sink.host, sink.port, workdir=tmp_path).assert_ok(1)

        known = {name: call_ids(data) for name, data in messages.items()}
        all_known = set().union(*known.values())

        branches = {name: top_branch(data) for name, data in messages.items()}

        def belongs(msg, name):
            ids = call_ids(msg)
            if ids & known[name] or not (ids & all_known):
                return True
            # unkscm.dat repeats novelsc.dat's branch and sent-by: by RFC 3261 17.2.3 it is a
            # retransmission of that transaction, answered with that transaction's response
            return bool(branches[name]) and top_branch(msg) == branches[name]

        problems = []
        for name in order:
            data = messages[name]
            transport, port = top_via(data)
            peers[port].send(data, server.addr)

            probe_id = f"probe-{secrets.token_hex(6)}@e2e"
            probe.send(sipnet.options(server.addr, probe, call_id=probe_id), server.addr)
            answers = probe.recv_until(lambda m: probe_id in call_ids(m), timeout=5)
            if not any(probe_id in call_ids(m) for m in answers):
                problems.append(f"{name}: no answer to the OPTIONS sent after it; serlite is "
                                f"{'running' if server.running() else 'gone'}")
                break

            replies = [m for peer in peers.values() for m in peer.drain() if belongs(m, name)]
            forwarded = [m for m in sink.drain() if belongs(m, name)]
            codes = [sipnet.status_of(m) for m in replies]
            expect = expectation(name, index[name][1], data)
            if expect.replies is not None and any(c not in expect.replies for c in codes):
                problems.append(f"{name}: answered {codes}, allowed {sorted(expect.replies)} "
                                f"or nothing")
            if forwarded and not expect.forward:
                problems.append(f"{name}: forwarded to the next hop:\n"
                                + forwarded[0].decode("utf-8", "replace")[:400])
            if expect.react and not replies and not forwarded:
                problems.append(f"{name}: neither answered nor forwarded")

        assert server.running(), "serlite exited"
        # scalar02.dat (400 expected) must not have left its contact behind.
        stored = sipnet.query_bindings(server.addr, "user")
        if any("host129.example.com" in c for c in stored):
            problems.append(f"scalar02.dat: its contact was stored: {stored}")
        assert not problems, "\n".join(problems)
    finally:
        for peer in [sink, probe, *peers.values()]:
            peer.close()
