"""`python -m stylesurv` (and `torchrun -m stylesurv ...`) runs the CLI."""

import sys

from stylesurv.app.cli import main

sys.exit(main())
