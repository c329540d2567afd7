"""Pure security machinery (no I/O, no clock): the ban table of secfilter."""
