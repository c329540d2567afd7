"""``python3 -m serlite.ctl``: ser-ctl (the commands are in ``serlite/control/ctl.py``)."""

import sys

from .control.ctl import main

if __name__ == "__main__":
    sys.exit(main())
