"""Shared fixtures: the anyio backend, Make's example payloads, and an in-process simulated zone."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "make-fixtures"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"Make's example payloads are missing: expected {FIXTURES}")
    return FIXTURES
