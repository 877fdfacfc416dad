"""``python -m postgres_sample_app``: the start command in manifest.yml."""

import sys

from postgres_sample_app.app import main

sys.exit(main())
