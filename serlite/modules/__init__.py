"""SER modules, one file each; each ends with ``EXPORTS`` (see ``export.py``).

``spec(name)`` imports a module's table on demand, so start-up only pays for what the
config loads.  ``core`` is the always-loaded table of SER's core actions (forward, log, ...).
"""

import importlib

# The modules serlite has, by SER name.
AVAILABLE = ("sl", "tm", "rr", "maxfwd", "textops", "usrloc", "registrar", "nathelper", "pike",
             "auth", "auth_db", "acc", "secfilter", "rtpproxy", "uac", "tls",
             "msilo")
AVAILABLE += ("presence",)
AVAILABLE += ("pua_dialoginfo",)    # busy lamps (needs presence)


def spec(name):
    """The ModuleSpec of module ``name``; KeyError if serlite has no such module."""
    if name not in AVAILABLE and name != "core":
        raise KeyError(name)
    return importlib.import_module("serlite.modules." + name).EXPORTS
