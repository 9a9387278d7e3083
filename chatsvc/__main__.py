"""`python -m chatsvc` runs the same command line as the `chatsvc` script."""

import sys

from chatsvc.cli import main

sys.exit(main())
