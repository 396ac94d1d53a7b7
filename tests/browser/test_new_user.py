"""A new user's first minute: a fresh clone, `make lab`, the first notebook in a browser."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from tests.browser.conftest import (
    ARTIFACTS, ROOT, free_port, quiet_environment, shut_down, wait_until_up,
)

URL = re.compile(r"(http://127\.0\.0\.1:\d+/lab/tree/notebooks/00-start-here\.ipynb\?token=\w+)")


@pytest.mark.timeout(900)
def test_make_lab_from_a_fresh_clone_opens_the_first_notebook(tmp_path: Path, page) -> None:
    clone = tmp_path / "amilab"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    token, port = secrets.token_hex(16), free_port()
    env = quiet_environment(tmp_path)
    # Only what a desktop would differ in: no browser to launch, a known port and token.
    config = tmp_path / "jupyter-config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"open_browser": False, "port": port, "ip": "127.0.0.1"},
        "IdentityProvider": {"token": token},
    }))
    env["JUPYTER_CONFIG_DIR"] = str(config)
    log = tmp_path / "make-lab.log"
    with open(log, "w") as output:  # make and the JupyterLab it starts: one process group
        process = subprocess.Popen(["make", "lab"], cwd=clone, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/status?token={token}", process, timeout=600)
        deadline = time.monotonic() + 30
        while not (found := URL.search(log.read_text())) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert found, log.read_text()[-2000:]
        page.goto(found[1])
        title = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedMarkdown h1").first
        title.wait_for(timeout=90_000)
        assert title.inner_text().startswith("00 · ")
        page.wait_for_selector(
            ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']",
            timeout=90_000,
        )
        assert page.locator(".jp-Dialog").count() == 0, "JupyterLab showed an error dialog"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "new-user-make-lab.png"))
    finally:
        shut_down(base, token, process)
    assert (clone / ".venv" / ".installed-lab").exists()
