"""`python -m stylesurv` (and `torchrun -m stylesurv ...`) runs the CLI."""

import sys

from stylesurv.cli import main

sys.exit(main())
