"""Property test (hypothesis, the "ci" profile of tests/conftest.py) of the relayed leg's SDP:
``relay_body`` keeps every line it does not own byte for byte and in order; it owns ``c=``,
``o=``, ``m=``, ``a=rtcp:`` and the ICE attributes it drops (serlite/media/sdp.py)."""

from hypothesis import given, strategies as st

from serlite.media import sdp
from serlite.media.sdp import _ICE

_OWNED = (b"c=", b"o=", b"m=", b"a=rtcp:")
_TEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .:/-+=*@\t"

ip4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
port = st.integers(0, 65535)
owned = st.one_of(
    st.builds(lambda a: f"c=IN IP4 {a}", ip4),
    st.builds(lambda a, v: f"o=- {v} {v} IN IP4 {a}", ip4, st.integers(0, 2**32)),
    st.builds(lambda p, f: f"m=audio {p} RTP/AVP {f}", port, st.integers(0, 127)),
    st.builds(lambda p, a: f"a=rtcp:{p} IN IP4 {a}", port, ip4),
    st.builds(lambda p: f"a=rtcp:{p}", port),
    st.sampled_from([x.decode() + "x" for x in _ICE]),
)
# any other line: a type letter other than c, o, m (and an a= that is not rtcp or ICE)
other = st.one_of(
    st.builds(lambda k, t: f"{k}={t}", st.sampled_from("vstbzkriue"), st.text(_TEXT, max_size=30)),
    st.text(_TEXT, max_size=30).map(lambda t: "a=" + t).filter(
        lambda line: not line.encode().startswith((b"a=rtcp:",) + _ICE)),
)


def is_owned(line):
    return line.startswith(_OWNED + _ICE)


@given(st.lists(st.one_of(owned, other), max_size=20), st.sampled_from(["\r\n", "\n"]),
       st.sampled_from(["203.0.113.5", "2001:db8::5"]),
       st.lists(st.none() | st.integers(1024, 65000), max_size=4), st.booleans())
def test_relay_body_keeps_every_line_it_does_not_own(lines, eol, ip, ports, origin):
    body = "".join(line + eol for line in lines).encode()
    out = sdp.relay_body(body, ip, ports, origin)
    kept = [line for line in body.splitlines(True) if not is_owned(line)]
    assert [line for line in out.splitlines(True) if not is_owned(line)] == kept
    assert not any(line.startswith(_ICE) for line in out.splitlines())
    # the owned lines that are not dropped stay where they were, one for one
    assert len(out.splitlines()) == len([x for x in body.splitlines() if not x.startswith(_ICE)])
