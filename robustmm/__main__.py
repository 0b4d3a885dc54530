"""``python -m robustmm`` (and ``torchrun ... -m robustmm run STUDY``) = the ``robustmm`` command."""

import sys

from robustmm.cli import main

sys.exit(main())
