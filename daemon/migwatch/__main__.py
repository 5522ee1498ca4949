"""`python -m migwatch`."""

import sys

from migwatch.entry import main

sys.exit(main())
