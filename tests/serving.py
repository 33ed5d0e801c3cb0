"""Running ``repic serve`` / ``repic app`` as real processes on 127.0.0.1 for the tests, and test images."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

from repic.serve.defaults import copy_database, shipped_concepts_path

EXAMPLES = shipped_concepts_path().parent / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_shipped_database(folder: Path) -> Path:
    """A writable copy of the shipped concept database in ``folder``."""
    target = folder / "concepts" / "database.json"
    copy_database(shipped_concepts_path(), target)
    return target


class Server:
    """A ``repic`` server subprocess; ``url`` once ``/healthz`` (serve) or ``/`` (app) answers."""

    def __init__(self, args: list[str], port: int, log: Path, ready_path: str = "/healthz", cwd: Path | None = None):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1"}
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._handle = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "repic.cli", *args, "--host", "127.0.0.1", "--port", str(port)],
            stdout=self._handle, stderr=subprocess.STDOUT, env=env, cwd=cwd,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the server did not answer within 120 s:\n{log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._handle.close()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def api_error(response: httpx.Response, status: int) -> str:
    """The message of an API error response, after checking its status and its JSON shape (no traceback)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == status
    assert "Traceback" not in response.text
    return body["error"]["message"]


def example_photo(name: str = "dana.png") -> tuple[str, bytes, str]:
    """One of the shipped example photos as an httpx file upload."""
    return (name, (EXAMPLES / name).read_bytes(), "image/png")
