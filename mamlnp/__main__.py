"""``python -m mamlnp``: the command-line entry point (see ``mamlnp.app.cli``)."""
import sys

from .app.cli import main

if __name__ == "__main__":
    sys.exit(main())
