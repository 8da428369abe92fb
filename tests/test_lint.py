"""The code stays clean: ruff (lint and format) and mypy, as part of the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "bot", "tests", "testkit", "bench"),
        ("ruff", "format", "--check", "bot", "tests", "testkit", "bench"),
    ],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff(command):
    result = run(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy():
    result = run("mypy", "--cache-dir", str(ROOT / ".mypy_cache"))
    assert result.returncode == 0, result.stdout + result.stderr
