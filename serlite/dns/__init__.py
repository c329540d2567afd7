"""DNS for a SIP server, pure (no socket, no clock): ``message`` (the RFC 1035 codec),
``config`` (resolv.conf and hosts text), ``cache`` (the bounded TTL cache), ``resolver`` (the
stub resolver's state machine: tries, timeouts, TCP on truncation, CNAMEs) and ``locate``
(RFC 3263 target selection: NAPTR, SRV, A/AAAA).  The sockets and the timer are
serlite/dns_client.py's."""
