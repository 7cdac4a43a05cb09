"""``python -m transmri``: the same as the ``transmri`` command."""

import sys

from transmri.cli import main

if __name__ == "__main__":
    sys.exit(main())
