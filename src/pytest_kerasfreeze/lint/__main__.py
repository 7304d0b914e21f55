"""``python -m pytest_kerasfreeze.lint PATH...``: the console script ``kerasfreeze-lint``."""

import sys

from pytest_kerasfreeze.lint.cli import main

if __name__ == "__main__":
    sys.exit(main())
