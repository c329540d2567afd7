"""The two typed errors of the configuration language.

``ConfigError`` is everything wrong with a config file, found before the server starts (``ser -c``):
lexing, parsing, unknown names, argument counts, fixups.  It carries the file, 1-based line and
column (columns count characters; a tab is one column) and an optional hint::

    ser.cfg:9:12: no module 'registrarr' — did you mean 'registrar'?
    ser.cfg:20:13: unknown function 'lookup'
      hint: did you loadmodule "registrar"?

``ScriptRuntimeError`` wraps an exception raised by a module function while the script runs,
naming the call's position: ``ser.cfg:23: in lookup(): KeyError: 'x'`` (the original exception
is its ``__cause__``).  It is also raised when ``route()`` calls nest deeper than the limit.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A config file the compiler refuses.  ``line``/``col`` are None when the error has no
    position (an unreadable file)."""

    def __init__(self, message, filename, line, col, hint=None):
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.line = line
        self.col = col
        self.hint = hint

    def where(self):
        """``line:col`` (or ``""`` without a position)."""
        if self.line is None:
            return ""
        return f"{self.line}:{self.col}"

    def __str__(self):
        where = self.where()
        head = f"{self.filename}:{where}: {self.message}" if where else \
            f"{self.filename}: {self.message}"
        if self.hint:
            head += f"\n  hint: {self.hint}"
        return head


class ScriptRuntimeError(Exception):
    """A module function failed while the script ran, or route() recursion went too deep."""

    def __init__(self, message, filename, line, name=None):
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.line = line
        self.name = name

    def __str__(self):
        if self.name:
            return f"{self.filename}:{self.line}: in {self.name}(): {self.message}"
        return f"{self.filename}:{self.line}: {self.message}"
