"""A tiny logger with SER's levels, to stderr or syslog, with rate limiting.

The ``logging`` package is not part of OpenWrt's python3-light, and SER's ``debug=N`` levels are
what a SER user knows: -3 alert ... 4 debug.  ``limited`` logs a message at most once per
``interval`` seconds per key, so a flood of bad packets cannot fill the router's log.
"""

import os
import sys
import time

ALERT, CRIT, ERR, WARN, NOTICE, INFO, DBG = -3, -2, -1, 1, 2, 3, 4
_NAMES = {ALERT: "ALERT", CRIT: "CRIT", ERR: "ERROR", WARN: "WARNING", NOTICE: "NOTICE",
          INFO: "INFO", DBG: "DEBUG"}
_SYSLOG_PRIO = {ALERT: 1, CRIT: 2, ERR: 3, WARN: 4, NOTICE: 5, INFO: 6, DBG: 7}

level = NOTICE
_to_stderr = True
_syslog = None
_last = {}          # key -> (time of last line, suppressed count)


def configure(debug=None, stderr=True):
    """Set the level (SER's ``debug=``) and the destination (stderr or syslog)."""
    global level, _to_stderr, _syslog
    if debug is not None:
        level = debug
    _to_stderr = stderr
    if not stderr and _syslog is None:
        try:
            import syslog
            syslog.openlog("ser", syslog.LOG_PID, syslog.LOG_DAEMON)
            _syslog = syslog
        except ImportError:  # no syslog module: stay on stderr
            _to_stderr = True


def log(lvl, msg):
    if lvl > level:
        return
    if _to_stderr or _syslog is None:
        sys.stderr.write(f"{time.strftime('%b %d %H:%M:%S')} ser[{os.getpid()}]: "
                         f"{_NAMES.get(lvl, lvl)}: {msg}\n")
        sys.stderr.flush()
    else:
        _syslog.syslog(_SYSLOG_PRIO.get(lvl, 6), msg)


def limited(key, lvl, msg, interval=10.0):
    """Log ``msg`` unless a line with the same key was logged less than ``interval`` s ago."""
    if lvl > level:
        return
    now = time.monotonic()
    last = _last.get(key)
    if last is not None and now - last[0] < interval:
        _last[key] = (last[0], last[1] + 1)
        return
    if last is not None and last[1]:
        msg = f"{msg} ({last[1]} similar messages suppressed)"
    if len(_last) > 1000:  # bounded: forget old keys rather than grow
        _last.clear()
    _last[key] = (now, 0)
    log(lvl, msg)


def announce(msg):
    """A line the operator must see whatever ``debug=`` says (start-up, shutdown)."""
    global level
    saved, level = level, max(level, NOTICE)
    try:
        log(NOTICE, msg)
    finally:
        level = saved


def error(msg):
    log(ERR, msg)


def warn(msg):
    log(WARN, msg)


def notice(msg):
    log(NOTICE, msg)


def info(msg):
    log(INFO, msg)


def debug(msg):
    log(DBG, msg)
