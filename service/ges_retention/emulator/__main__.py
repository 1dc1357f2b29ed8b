"""`python -m ges_retention.emulator [flags]`: the same as `ges-retention emulator`."""

from __future__ import annotations

import argparse

from ges_retention.emulator.command import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ges_retention.emulator", description="A local GES + IAM emulator for tests and demos."
    )
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
