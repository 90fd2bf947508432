"""Suite-wide settings: sygnify's own tests run with strict event payload checks."""

from __future__ import annotations

import os

# Set before sygnify is imported (here and in the subprocesses tests start): a payload that
# does not match its declaration raises instead of being logged and dropped.
os.environ.setdefault("SYGNIFY_STRICT_EVENTS", "1")
