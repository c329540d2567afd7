"""serlite: SER, the SIP Express Router, in Python for home routers."""

__version__ = "0.1.0"
