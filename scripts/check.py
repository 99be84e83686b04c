"""One command for every check: lint (ruff), types (mypy), tests (pytest).

.venv/bin/python scripts/check.py [pytest arguments…]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> int:
    print(f"$ {' '.join(command)}", flush=True)
    return subprocess.call(command, cwd=ROOT)  # noqa: S603 - our own tools


def main() -> int:
    failed = []
    if run(str(BIN / "ruff"), "check", ".") != 0:
        failed.append("ruff")
    if run(str(BIN / "mypy")) != 0:
        failed.append("mypy")
    if run(str(BIN / "python"), "-m", "pytest", *sys.argv[1:]) != 0:
        failed.append("pytest")
    if failed:
        print(f"FAILED: {', '.join(failed)}", flush=True)
        return 1
    print("All checks passed.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
