"""A new user's first minute: a fresh clone, `make lab`, the first notebook in a browser."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    ARTIFACTS, ROOT, free_port, quiet_environment, shut_down, wait_until_up,
)

VISIBLE = ".jp-NotebookPanel:not(.lm-mod-hidden)"
#: Stands in for the desktop's web browser: writes down the address JupyterLab opens.
BROWSER = """#!/bin/sh
printf '%s' "$1" > "$(dirname "$0")/opened-url.txt"
"""


@pytest.mark.timeout(900)
def test_make_lab_from_a_fresh_clone_opens_the_first_notebook(tmp_path: Path, page) -> None:
    clone = tmp_path / "amilab"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    token, port = secrets.token_hex(16), free_port()
    env = quiet_environment(tmp_path)
    # Only what a desktop differs in: the browser JupyterLab launches (ours writes down the
    # address it is given, a local page that redirects to the notebook), a known port and token.
    browser = tmp_path / "browser.sh"
    browser.write_text(BROWSER)
    browser.chmod(0o755)
    config = tmp_path / "jupyter-config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"open_browser": True, "browser": f"{browser} %s",
                      "port": port, "ip": "127.0.0.1"},
        "IdentityProvider": {"token": token},
    }))
    env["JUPYTER_CONFIG_DIR"] = str(config)
    log = tmp_path / "make-lab.log"
    opened = tmp_path / "opened-url.txt"
    with open(log, "w") as output:  # make and the JupyterLab it starts: one process group
        process = subprocess.Popen(["make", "lab"], cwd=clone, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/status?token={token}", process, timeout=600)
        deadline = time.monotonic() + 30
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert opened.exists(), "JupyterLab opened no browser:\n" + log.read_text()[-2000:]
        page.goto(opened.read_text())
        page.wait_for_url(re.compile(rf"{re.escape(base)}/lab/tree/(.*/)?00-start-here\.ipynb"))
        title = page.locator(VISIBLE).get_by_role("heading", name="00 · Start here", level=1)
        expect(title).to_be_visible(timeout=90_000)
        kernel = page.locator(f"{VISIBLE} .jp-Toolbar-kernelName")
        expect(kernel).to_have_text("Python 3 (ipykernel)", timeout=90_000)
        expect(page.locator(f"{VISIBLE} .jp-Notebook-ExecutionIndicator")).to_have_attribute(
            "data-status", "idle", timeout=90_000)
        assert page.locator(".jp-Dialog").count() == 0, page.locator(".jp-Dialog").inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "new-user-make-lab.png"))
    finally:
        shut_down(base, token, process)
    assert (clone / ".venv" / ".installed-lab").exists()
