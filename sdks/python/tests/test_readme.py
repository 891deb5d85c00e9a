"""The README's quickstart (its first python code block) runs unchanged against the sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import Server

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def test_quickstart_runs_as_written(server: Server) -> None:
    quickstart = python_blocks()[0]
    env = {**os.environ, "TWH_API_KEY": server.api_key, "TWH_URL": server.url}
    result = subprocess.run(
        [sys.executable, "-c", quickstart], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "received 5, available now" in result.stdout
    assert "MUG-12OZ" in result.stdout


def test_every_python_block_compiles() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 8
    for block in blocks:
        compile(block, "README.md", "exec")
