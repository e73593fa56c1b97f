"""`python -m helios` and the installed `helios` command: the start-up read-ahead first, then the CLI."""

import sys


def main() -> int:
    from .startup import read_ahead_from_here

    read_ahead_from_here(sys.argv[1:])  # before torch: a cold disk is what a start waits on
    from .cli import main as cli

    return cli()


if __name__ == "__main__":
    sys.exit(main())
