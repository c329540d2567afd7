"""Transactions (RFC 3261 17), sans-I/O: time is passed in."""
