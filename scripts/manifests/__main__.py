import sys

from scripts.manifests.cli import main

sys.exit(main())
