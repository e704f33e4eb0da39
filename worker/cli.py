"""`morphml-worker`: not yet available (the worker issue builds it)."""

import sys


def main() -> None:
    print("morphml-worker: not yet available", file=sys.stderr)
    sys.exit(2)
