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


@pytest.fixture(autouse=True)
def _private_budget_ledgers(tmp_path_factory: pytest.TempPathFactory,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Processes of one user share a request budget through files under /run/user/UID
    # (makestream.make.ledger). Each test gets its own folder, so no test shares a budget with
    # another test or with the developer's own makestream.
    monkeypatch.setenv("MAKESTREAM_BUDGET_DIR", str(tmp_path_factory.mktemp("budget")))


@pytest.fixture(autouse=True)
def _history_store_in_tmp(tmp_path_factory: pytest.TempPathFactory,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands that keep history (watch, serve-sse) write it under a temporary folder, never in
    the real home; subprocesses inherit the same environment."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))
    monkeypatch.delenv("MAKESTREAM_STORE", raising=False)
