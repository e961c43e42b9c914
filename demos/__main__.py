"""``python -m demos``: run the demos (see :mod:`demos.runner`)."""

import sys

from .runner import main

sys.exit(main())
