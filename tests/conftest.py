"""Shared fixtures: the anyio backend, Make's example payloads, and an in-process simulated zone."""

from __future__ import annotations

from pathlib import Path

import pytest

# Make's example payloads, kept with their LICENSE
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "make"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"Make's example payloads are missing: expected {FIXTURES}")
    return FIXTURES
