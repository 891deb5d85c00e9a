"""Starts the real ``twh serve`` once per test session, as tests/lib/server.mjs does for the node
suites: a fresh SQLite file in a temp folder, ``TWH_BIND=127.0.0.1:0``, and the URL and sandbox
API key read from what the server prints. The binary is ``$TWH_BIN`` (else the repository's
debug build)."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import twh

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 30.0


def binary_path() -> str:
    if os.environ.get("TWH_BIN"):
        return os.environ["TWH_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return str(Path(target) / "debug" / "twh")


@dataclass
class Server:
    url: str
    api_key: str
    tenant_id: str
    output: list[str]


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    binary = binary_path()
    if not os.path.exists(binary):
        pytest.fail(f"no twh binary at {binary}: set TWH_BIN")
    data_dir = tempfile.mkdtemp(prefix="twh-sdk-py-")
    env = {
        **os.environ,
        "TWH_BIND": "127.0.0.1:0",
        "DATABASE_URL": f"sqlite://{data_dir}/twh.db?mode=rwc",
        "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
    }
    process = subprocess.Popen(
        [binary, "serve"],
        cwd=data_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()

    url = api_key = tenant_id = None
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not (url and api_key and tenant_id):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail("twh serve did not start in time:\n" + "".join(output))
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"twh serve exited with {process.wait()}:\n" + "".join(output))
            if m := re.search(r"listening on (http://\S+)", line):
                url = m.group(1)
            if m := re.search(r"API key:\s+(twh_\S+)", line):
                api_key = m.group(1)
            if m := re.search(r"Tenant:\s+(\S+)", line):
                tenant_id = m.group(1)
        yield Server(url=url, api_key=api_key, tenant_id=tenant_id, output=output)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def client(server: Server) -> Iterator[twh.Client]:
    with twh.Client(server.api_key, base_url=server.url) as c:
        yield c


@pytest.fixture
async def async_client(server: Server) -> AsyncIterator[twh.AsyncClient]:
    async with twh.AsyncClient(server.api_key, base_url=server.url) as c:
        yield c


@pytest.fixture
def unique() -> str:
    """A short suffix that keeps each test's SKUs and location codes apart."""
    return uuid.uuid4().hex[:10].upper()
