"""``python -m mamlnp``: the command-line entry point (see ``mamlnp.cli``)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
