"""`python -m producer_sim run|watch`."""

import sys

from producer_sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
