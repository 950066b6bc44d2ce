import sys

from processing.cli import main

sys.exit(main())
