"""``python -m robustmm ...`` is the ``robustmm`` command."""

import sys

from robustmm.cli import main

sys.exit(main())
