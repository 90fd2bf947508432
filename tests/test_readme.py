"""The README is read on PyPI, where relative links break: its links are absolute, and each
one into this repository names a file or folder that exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOB = "https://github.com/sygnify/sygnify/blob/main/"


def test_readme_links_are_absolute_and_point_at_files_that_exist() -> None:
    links = re.findall(r"\]\(([^)]+)\)", (REPO / "README.md").read_text())
    assert links
    relative = [link for link in links if not link.startswith(("https://", "http://", "#"))]
    assert not relative, f"relative links break on PyPI: {relative}"
    missing = [link for link in links if link.startswith(BLOB) and not (REPO / link[len(BLOB) :]).exists()]
    assert not missing, f"links to files that do not exist: {missing}"
