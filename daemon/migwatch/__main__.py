"""`python -m migwatch`."""

import sys

from migwatch.cli import main

sys.exit(main())
