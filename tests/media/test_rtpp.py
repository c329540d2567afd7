"""The rtpproxy control protocol codec: commands as the relay reads them, replies as rtpproxy
and rtpengine write them (the replies below are rtpengine 10.5's, taken from a run)."""

import pytest

from serlite.media import rtpp


def test_commands_are_the_protocols_bytes():
    assert rtpp.version("ab_1") == b"ab_1 V"
    assert rtpp.capability("ab_2") == b"ab_2 VF 20050322"
    assert rtpp.update("ab_3", "c1@h", "10.0.0.5", 4000, "ftag") == \
        b"ab_3 U c1@h 10.0.0.5 4000 ftag;1"
    assert rtpp.update("ab_4", "c1@h", "10.0.0.5", 4000, "ttag", "ftag", 2, "EI") == \
        b"ab_4 UEI c1@h 10.0.0.5 4000 ttag;2 ftag;2"
    # the answer names the offerer first (rtpengine swaps them back)
    assert rtpp.lookup("ab_5", "c1@h", "10.0.0.6", 5000, "ttag", "ftag", 1, "EI") == \
        b"ab_5 LEI c1@h 10.0.0.6 5000 ftag;1 ttag;1"
    assert rtpp.delete("ab_6", "c1@h", "ftag") == b"ab_6 D c1@h ftag"
    assert rtpp.delete("ab_7", "c1@h", "ftag", "ttag") == b"ab_7 D c1@h ftag ttag"


def test_modifiers_follow_kamailios_flags():
    assert rtpp.modifiers("ie", "10.0.0.1") == "IE"
    assert rtpp.modifiers("ei", "10.0.0.1") == "EI"
    assert rtpp.modifiers("arw", "10.0.0.1") == "A"
    assert rtpp.modifiers("", "2001:db8::1") == "6"


@pytest.mark.parametrize("bad", ["a b", "", "x;1", "a\r\nb"])
def test_what_would_break_a_command_is_refused(bad):
    with pytest.raises(ValueError):
        rtpp.update("c", bad, "10.0.0.5", 4000, "ftag")
    with pytest.raises(ValueError):
        rtpp.delete("c", "callid", bad)


def test_replies():
    assert rtpp.split_reply(b"ab_3 30000 127.0.0.3 4\n") == \
        ("ab_3", [b"30000", b"127.0.0.3", b"4"])
    assert rtpp.media_address([b"30000", b"127.0.0.3", b"4"], "127.0.0.1") == \
        ("127.0.0.3", 30000)
    # rtpproxy without -l names no address: the relay's own
    assert rtpp.media_address([b"35000"], "192.0.2.7") == ("192.0.2.7", 35000)
    with pytest.raises(rtpp.RtppError) as err:
        rtpp.media_address([b"E8"], "127.0.0.1")
    assert err.value.code == 8
    # rtpengine's answer to a lookup of no session
    with pytest.raises(rtpp.RtppError, match="no media port"):
        rtpp.media_address([b"0", b"0.0.0.0"], "127.0.0.1")
    with pytest.raises(rtpp.RtppError, match="no usable address"):
        rtpp.media_address([b"30000", b"not-an-ip"], "127.0.0.1")
    with pytest.raises(rtpp.RtppError):
        rtpp.split_reply(b" \n")


@pytest.mark.parametrize("text, want", [
    ("udp:127.0.0.1:7722", ("udp", "127.0.0.1", 7722)),
    ("UDP:rtp.example.net:22222", ("udp", "rtp.example.net", 22222)),
    ("udp6:[::1]:7722", ("udp6", "::1", 7722)),
    ("udp6:::1:7722", ("udp6", "::1", 7722)),
])
def test_sockets(text, want):
    sock = rtpp.parse_sock(text)
    assert (sock.family, sock.host, sock.port) == want
    assert rtpp.parse_sock(str(sock)).host == want[1]


@pytest.mark.parametrize("text, why", [
    ("unix:/var/run/rtpproxy.sock", "unix sockets are not supported"),
    ("/var/run/rtpproxy.sock", "unix sockets are not supported"),
    ("udp:1.2.3.4:7722=2 udp:1.2.3.5:7722=1", "one socket only"),
    ("tcp:1.2.3.4:7722", "scheme must be"),
    ("udp:1.2.3.4:0", "expected udp:host:port"),
    ("udp:1.2.3.4", "expected udp:host:port"),
])
def test_bad_sockets(text, why):
    with pytest.raises(ValueError, match=why):
        rtpp.parse_sock(text)
