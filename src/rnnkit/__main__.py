"""``python -m rnnkit``: the command line (see :mod:`rnnkit.cli`)."""

import sys

from rnnkit.cli import main

sys.exit(main())
