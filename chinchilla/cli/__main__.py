"""``python -m chinchilla.cli``: the same as the ``chinchilla`` console script."""

import sys

from chinchilla.cli import main

sys.exit(main())
