"""SIMPLE presence, pure: ``pidf.py`` (RFC 3863 documents checked, several publishers' merged as
Kamailio's presence_xml does, the ``closed`` document of a user with no state, dialog-info's
per-watcher version), ``state.py`` (RFC 3903 publications and RFC 6665 subscriptions as tables
with their rules and expiry; times handed in).  The module (serlite/modules/presence.py) owns
the SIP, the timers and the files."""
