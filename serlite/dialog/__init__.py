"""Dialogs, pure: ``tracker.py`` follows each call from its INVITE to its end (RFC 3261 12)
and tells its listeners (acc's call history, the status page's active calls); ``feed.py``
turns what tm sees pass into the tracker's events."""
