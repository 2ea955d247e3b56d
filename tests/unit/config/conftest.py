"""Shared paths for the config tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / "tests" / "data" / "configs"
EXAMPLES = REPO / "examples"


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root so file names in messages are short and exact."""
    monkeypatch.chdir(REPO)
    return REPO
