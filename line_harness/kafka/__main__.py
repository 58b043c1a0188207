"""`python -m line_harness.kafka COMMAND`: the local broker's command line."""

import sys

from line_harness.kafka.cli import main

sys.exit(main(sys.argv[1:]))
