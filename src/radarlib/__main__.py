"""``python -m radarlib`` runs the command line."""

import sys

from radarlib.cli import main

sys.exit(main())
