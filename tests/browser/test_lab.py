"""What a student sees in JupyterLab: every notebook with a panel, run in a real browser.

nbval cannot see widgets; these tests can. Each opens a notebook in headless
Chromium, runs all cells, waits for the kernel, and checks the page the way a
student would: no error anywhere, panels showing what the course says they
show, and the secret nowhere on the page. A screenshot of each is saved in
build/screenshots/.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.conftest import ARTIFACTS, ROOT

pytestmark = pytest.mark.timeout(300)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
WITH_PANELS = [
    p.name for p in NOTEBOOKS
    if "Panel(" in "".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"])
]
#: The course's admin secret: never on the page of a notebook with panels.
SECRET = "mysecretpassword"
VISIBLE = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def open_and_run_all(page, lab, notebook: str) -> None:
    """Open a notebook, wait for an idle kernel, run all cells and wait until done."""
    page.goto(lab.url(notebook))
    page.wait_for_selector(f"{VISIBLE} .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=90_000)
    page.get_by_role("menuitem", name="Run").click()
    page.locator('[data-command="runmenu:run-all"]').click()
    page.wait_for_function(
        """(sel) => {
            const prompts = [...document.querySelectorAll(sel + ' .jp-CodeCell .jp-InputPrompt')];
            const done = prompts.length && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            const idle = document.querySelector(sel + " .jp-Notebook-ExecutionIndicator[data-status='idle']");
            return done && idle;
        }""",
        arg=VISIBLE, timeout=180_000,
    )


def errors_on(page) -> list[str]:
    stderr = page.locator(
        f'{VISIBLE} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    )
    return [text[:300] for text in stderr.all_text_contents()]


def screenshot(page, notebook: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{notebook.removesuffix('.ipynb')}.png"), full_page=True)


def secret_on_page(page) -> bool:
    """The secret in any text, or in any input other than a password field."""
    text = page.locator(VISIBLE).inner_text()
    values = page.eval_on_selector_all(
        f"{VISIBLE} input:not([type=password]), {VISIBLE} textarea", "els => els.map(e => e.value)"
    )
    return SECRET in text or any(SECRET in v for v in values)


def test_the_course_has_notebooks_with_panels() -> None:
    assert {"03-connect.ipynb", "05-basic-actions.ipynb", "07-live-events.ipynb",
            "09-security.ipynb"} <= set(WITH_PANELS)


@pytest.mark.parametrize("notebook", WITH_PANELS)
def test_notebook_runs_in_jupyterlab_without_error_and_hides_the_secret(page, lab, notebook) -> None:
    open_and_run_all(page, lab, notebook)
    panels = page.locator(f"{VISIBLE} .amilab-panel")
    panels.first.wait_for(timeout=30_000)
    screenshot(page, notebook)
    assert errors_on(page) == []
    assert not secret_on_page(page)
    for status in page.locator(f"{VISIBLE} .amilab-connection-panel .amilab-status").all():
        assert "simulated" in status.inner_text().lower()


def test_calling_1002_from_the_phone_panel_fills_the_event_panel(page, lab) -> None:
    open_and_run_all(page, lab, "07-live-events.ipynb")
    events = page.locator(f"{VISIBLE} .amilab-event-panel").first
    phones = page.locator(f"{VISIBLE} .amilab-phone-panel").first
    phones.scroll_into_view_if_needed()
    phones.get_by_role("button", name=re.compile(r"call 1001.*1002", re.I)).click()
    for name in ("Newchannel", "DialBegin", "DialEnd", "Hangup"):
        events.locator("table td", has_text=re.compile(rf"^{name}$")).first.wait_for(timeout=60_000)
    events.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "live-events-panel.png"))
    assert errors_on(page) == []


def test_action_panel_shows_the_bytes_and_the_response_table(page, lab) -> None:
    open_and_run_all(page, lab, "05-basic-actions.ipynb")
    panel = page.locator(f"{VISIBLE} .amilab-action-panel").first
    panel.scroll_into_view_if_needed()
    panel.locator(".amilab-action-send button, button.amilab-action-send").first.click()
    raw = panel.locator(".amilab-raw")
    raw.get_by_text(re.compile(r"Response: Success")).first.wait_for(timeout=30_000)
    assert "Action: " in raw.inner_text()
    assert panel.locator(".amilab-response table").count() >= 1
    assert errors_on(page) == []
