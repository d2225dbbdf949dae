"""The README's test command works in a clone with nothing beside it.

A user's clone has nothing beside it: every file the tests read must be inside the repository. This
collects the whole suite (which reads Make's example payloads at import time) in a copy of the
tracked files placed alone in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _tracked_files() -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, text=True, check=True, timeout=30,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [line for line in out.splitlines() if line and (ROOT / line).is_file()]


def test_suite_collects_in_a_lone_copy(tmp_path: Path) -> None:
    lone = tmp_path / "alone" / "makestream"
    for name in _tracked_files():
        target = lone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    assert [p.name for p in lone.parent.iterdir()] == ["makestream"]  # nothing beside it
    env = {**os.environ, "PYTHONPATH": str(lone)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=lone, capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "error" not in result.stdout.splitlines()[-1].lower()
    # The copy's own fixtures were read, not this checkout's.
    probe = subprocess.run(
        [sys.executable, "-c", "import tests.conftest as c; print(c.FIXTURES)"],
        cwd=lone, capture_output=True, text=True, env=env, timeout=60,
    )
    assert probe.stdout.strip().startswith(str(lone)), probe.stdout + probe.stderr
