"""SIP messages: parsing and serialising, sans-I/O (RFC 3261 sections 7, 20, 25)."""
