import sys

from scripts.pipeline.cli import main

sys.exit(main())
