"""Start bqemulator with its DuckDB extension downloads turned off (they fail offline).

Run with the bqemulator venv's interpreter: ``python bqemulator_launcher.py start ...``.
"""

from __future__ import annotations

import os
import sys

# This file sits next to tests/emulators/bqemulator.py, which would shadow the real package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]


def main() -> None:
    from bqemulator.storage.engine import DuckDBEngine  # type: ignore[import-not-found]

    def _skip(*_args: object, **_kwargs: object) -> None:
        return None

    DuckDBEngine._load_spatial = _skip
    DuckDBEngine._load_format_extensions = _skip
    from bqemulator.cli import main as cli_main  # type: ignore[import-not-found]

    sys.argv = ["bqemulator", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
