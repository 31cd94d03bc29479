"""``python -m gsv_triton.cli``: the ``gsv-triton`` command."""

import sys

from gsv_triton.cli import main

sys.exit(main())
