"""`python -m line_harness.evidence_store COMMAND`: the local evidence store's command line."""

import sys

from line_harness.evidence_store.cli import main

sys.exit(main(sys.argv[1:]))
