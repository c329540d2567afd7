"""``python3 -m serlite``: the ``ser`` command."""

import sys

from .cli import main

sys.exit(main())
