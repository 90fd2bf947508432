"""The change-stream resume token file (sygnify.connectors.mongodb.changes)."""

from __future__ import annotations

import stat
from pathlib import Path

from sygnify.connectors.mongodb.changes import FileResumeTokenStore


def test_the_resume_token_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "orders.token"
    path.write_text("{}")
    path.chmod(0o644)  # even a token file that others could read is replaced by a private one
    store = FileResumeTokenStore(path)
    store.save({"_data": "00000001"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.save({"_data": "00000002"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.load() == {"_data": "00000002"}
    assert [entry.name for entry in tmp_path.iterdir()] == ["orders.token"]
