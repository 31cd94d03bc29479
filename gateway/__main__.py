"""``python -m gsv_gateway [flags]``: the same as ``gsv-triton gateway``."""

import sys

from gsv_gateway.cli import main

sys.exit(main())
