"""``python -m web.cli``: the ``telecentre`` command."""

import sys

from web.cli import main

sys.exit(main())
