"""Seeing and steering the running server: statistics, the control socket, ser-ctl."""
