"""``python -m vibetwist.vt``: the same as the ``vt`` console script."""

import sys

from vibetwist.vt import main

sys.exit(main())
