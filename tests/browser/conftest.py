"""A real JupyterLab and a real (headless) Chromium for end-to-end tests.

JupyterLab runs on a temporary copy of the notebooks (autosave would rewrite
them), with a token, on a free loopback port, and is stopped through its own
API so no server or kernel is left behind. The tests skip, saying why, when
Debian's chromium is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots land here (ignored by git); docs/img/ keeps the one README shows.
ARTIFACTS = ROOT / "build" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: JupyterLab's news and update checks would reach for the internet; autosave
#: would store one test's outputs for the next test to find already there.
QUIET_LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}
#: JupyterLab's default attaches and renders only the cells near the viewport;
#: the course tests look at the whole notebook (is the secret anywhere?), so
#: their lab renders every cell.
EVERY_CELL_RENDERED = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); "
                    ".ci/run installs it so CI always runs the browser tests")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiet_environment(workdir: Path, **settings_files: dict) -> dict[str, str]:
    """The environment for a JupyterLab under test: no AMI_* (notebooks use the
    simulator), no news pop-up, no autosave, settings (these and
    ``settings_files``), workspaces and runtime files in ``workdir``."""
    settings = workdir / "lab-settings"
    for name, value in {**QUIET_LAB_SETTINGS, **settings_files}.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMI_")}
    env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(workdir / "workspaces")  # no tabs from other runs
    env["JUPYTER_RUNTIME_DIR"] = str(workdir / "runtime")
    return env


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not answer {url} within {timeout:.0f} s")


def shut_down(base: str, token: str, process: subprocess.Popen) -> None:
    """Stop JupyterLab through its API (that also ends its kernels), then make sure.

    ``process`` must have been started with ``start_new_session=True``: if the
    API does not answer, its whole process group is killed (a ``make`` and the
    JupyterLab it started), not just the process itself.
    """
    try:
        request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        process.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


@dataclass
class Lab:
    base: str
    token: str
    root: Path

    def url(self, notebook: str) -> str:
        """The notebook alone in a fresh workspace (``reset``: no tabs of earlier tests)."""
        return f"{self.base}/lab/tree/{notebook}?token={self.token}&reset"

    def end_sessions(self) -> None:
        """Shut down every notebook's kernel, so the next test that opens the same
        notebook starts a fresh one (JupyterLab reuses a notebook's session)."""
        sessions = self._api("GET", "sessions")
        for session in sessions:
            self._api("DELETE", f"sessions/{session['id']}")

    def _api(self, method: str, path: str):
        request = urllib.request.Request(
            f"{self.base}/api/{path}", method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        return json.loads(body) if body else None


# Module scope, not session: Playwright's sync API keeps an asyncio loop running
# in the main thread while it is open, and later tests (panoramisk's) need asyncio.run().
@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    chromium_path()
    workdir = tmp_path_factory.mktemp("lab")
    root = workdir / "course"
    shutil.copytree(ROOT / "notebooks", root)
    token, port = secrets.token_hex(16), free_port()
    base = f"http://127.0.0.1:{port}"
    with open(workdir / "lab.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
             f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            env=quiet_environment(workdir, **EVERY_CELL_RENDERED), stdout=subprocess.DEVNULL,
            stderr=log, start_new_session=True,
        )
        try:
            wait_until_up(f"{base}/api/status?token={token}", process)
            yield Lab(base, token, root)
        finally:
            shut_down(base, token, process)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
