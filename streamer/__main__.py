"""``python -m streamer`` runs the CLI."""

import sys

from streamer.cli import main

sys.exit(main())
