import sys

from gr_core.cli import main

sys.exit(main())
