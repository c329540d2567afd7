"""Parser micro-benchmark: CPU per message of ``sip.message.parse`` and ``URI.parse``.

    python3 bench/parsebench.py [ROUNDS]

Parses the messages of one call as a phone and its callee send them (INVITE, 180, 200, ACK,
BYE, 200, each as it comes through the proxy: the same dialog, new branches) and a REGISTER,
ROUNDS times (20000), with a new Call-ID, tags and branches on every round so that the
parser's memos see what a proxy sees: the lines of a dialog repeat, each call's do not.
Prints microseconds per message (the best of 5 runs), then per URI.parse of the R-URIs and
Routes of those messages.
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from serlite.sip.message import parse  # noqa: E402
from serlite.sip.uri import URI  # noqa: E402

INVITE = (
    "INVITE sip:bob@192.168.1.20:5062;transport=udp SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK{b}\r\n"
    "Via: SIP/2.0/UDP 192.168.1.30:5062;rport=5062;branch=z9hG4bK{b}a\r\n"
    "Max-Forwards: 69\r\n"
    "Record-Route: <sip:192.168.1.10;lr;ftag={f}>\r\n"
    "From: \"Alice\" <sip:alice@home.lan>;tag={f}\r\n"
    "To: <sip:bob@home.lan>\r\n"
    "Call-ID: {c}@192.168.1.30\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:alice@192.168.1.30:5062>\r\n"
    "User-Agent: phone/1.0\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n\r\nv=0\n")
RESPONSE = (
    "SIP/2.0 {s}\r\n"
    "Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK{b}\r\n"
    "Via: SIP/2.0/UDP 192.168.1.30:5062;rport=5062;branch=z9hG4bK{b}a\r\n"
    "Record-Route: <sip:192.168.1.10;lr;ftag={f}>\r\n"
    "From: \"Alice\" <sip:alice@home.lan>;tag={f}\r\n"
    "To: <sip:bob@home.lan>;tag={t}\r\n"
    "Call-ID: {c}@192.168.1.30\r\n"
    "CSeq: {q}\r\n"
    "Contact: <sip:bob@192.168.1.20:5062>\r\n"
    "Content-Length: 0\r\n\r\n")
IN_DIALOG = (
    "{m} sip:bob@192.168.1.20:5062 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK{b}\r\n"
    "Via: SIP/2.0/UDP 192.168.1.30:5062;rport=5062;branch=z9hG4bK{b}a\r\n"
    "Max-Forwards: 69\r\n"
    "Route: <sip:192.168.1.10;lr;ftag={f}>\r\n"
    "From: \"Alice\" <sip:alice@home.lan>;tag={f}\r\n"
    "To: <sip:bob@home.lan>;tag={t}\r\n"
    "Call-ID: {c}@192.168.1.30\r\n"
    "CSeq: {q}\r\n"
    "Content-Length: 0\r\n\r\n")
REGISTER = (
    "REGISTER sip:home.lan SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.1.30:5062;rport;branch=z9hG4bK{b}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@home.lan>;tag={f}\r\n"
    "To: <sip:alice@home.lan>\r\n"
    "Call-ID: r{c}@192.168.1.30\r\n"
    "CSeq: 7 REGISTER\r\n"
    "Contact: <sip:alice@192.168.1.30:5062>;expires=600\r\n"
    "Expires: 600\r\n"
    "Content-Length: 0\r\n\r\n")


def call(i):
    """The messages of call ``i`` as bytes."""
    f, t, c, b = f"f{i}", f"t{i}", f"c{i}", f"{i}"
    return [m.encode("latin-1") for m in (
        INVITE.format(b=b + "i", f=f, c=c),
        RESPONSE.format(s="180 Ringing", b=b + "i", f=f, t=t, c=c, q="1 INVITE"),
        RESPONSE.format(s="200 OK", b=b + "i", f=f, t=t, c=c, q="1 INVITE"),
        IN_DIALOG.format(m="ACK", b=b + "a", f=f, t=t, c=c, q="1 ACK"),
        IN_DIALOG.format(m="BYE", b=b + "b", f=f, t=t, c=c, q="2 BYE"),
        RESPONSE.format(s="200 OK", b=b + "b", f=f, t=t, c=c, q="2 BYE"),
        REGISTER.format(b=b + "r", f=f, c=c))]


def main(argv):
    rounds = int(argv[1]) if len(argv) > 1 else 20000
    data = [m for i in range(rounds) for m in call(i)]
    uris = [f"sip:192.168.1.10;lr;ftag=f{i}" for i in range(rounds)]
    uris += ["sip:bob@192.168.1.20:5062;transport=udp"] * rounds
    best = best_uri = None
    for _ in range(5):
        t0 = time.process_time()
        for m in data:
            parse(m)
        t = (time.process_time() - t0) / len(data)
        best = t if best is None else min(best, t)
        t0 = time.process_time()
        for u in uris:
            URI.parse(u)
        t = (time.process_time() - t0) / len(uris)
        best_uri = t if best_uri is None else min(best_uri, t)
    print(f"parse: {best * 1e6:.2f} us/message ({len(data)} messages); "
          f"URI.parse: {best_uri * 1e6:.3f} us/URI ({len(uris)} URIs)")


if __name__ == "__main__":
    main(sys.argv)
