"""`python -m flows.cli`: the `inr` command."""

import sys

from . import main


if __name__ == "__main__":
    sys.exit(main())
