"""``python -m mailpool`` runs the command line."""

import sys

from mailpool.cli import main

sys.exit(main())
