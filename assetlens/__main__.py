"""``python -m assetlens``: the same as the ``assetlens`` command."""

import sys

from assetlens.cli import main

sys.exit(main())
