"""``python -m gsv_cli``: the ``gsv-triton`` command."""

import sys

from gsv_cli import main

sys.exit(main())
