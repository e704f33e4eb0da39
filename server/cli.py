"""`morphml-server`: not yet available (the control-plane issue builds it)."""

import sys


def main() -> None:
    print("morphml-server: not yet available", file=sys.stderr)
    sys.exit(2)
