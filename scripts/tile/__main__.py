import sys

from scripts.tile.cli import main

sys.exit(main())
