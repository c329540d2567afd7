"""The media relay's pure parts (no sockets, no clock): the SDP of a relayed leg (``sdp.py``),
a relay session per call with its legs, latching and counters (``session.py``), and the
bounded pool of RTP ports (``ports.py``).  The sockets are ``serlite/relay.py``'s."""
