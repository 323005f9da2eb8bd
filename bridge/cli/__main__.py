"""`python -m filmscore.bridge.cli` runs the `filmscore` command."""

import sys

from . import main

sys.exit(main())
