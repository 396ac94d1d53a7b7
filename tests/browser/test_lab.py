"""What a student sees in JupyterLab: every notebook with a panel, run in a real browser.

nbval cannot see widgets; these tests can. Each opens a notebook in headless
Chromium, runs its cells, waits for the kernel, and checks the page the way a
student would: no error anywhere, panels showing what the course says they
show, buttons that work, and the secret nowhere on the page. A screenshot of
each is saved in build/screenshots/.

Every notebook ends with a cell that closes its panels (they vanish from the
page), so the tests run everything above that cell, look and click, then run
the cleanup and check the page once more.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.conftest import ARTIFACTS, ROOT, Lab

pytestmark = pytest.mark.timeout(300)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
WITH_PANELS = [
    p.name for p in NOTEBOOKS
    if "Panel(" in "".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"])
]
#: The course's admin secret: never on the page of a notebook with panels.
SECRET = "mysecretpassword"
VISIBLE = ".jp-NotebookPanel:not(.lm-mod-hidden)"
#: Output JupyterLab shows for an exception or anything written to stderr.
STDERR = f'{VISIBLE} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
#: An output showing a widget (JupyterLab sets data-mime-type on every other output).
WIDGET_OUTPUT = f"{VISIBLE} .jp-OutputArea-output:not([data-mime-type])"
#: A widget update reaches the page within this many ms (the panels redraw a few times a second).
SHOWN = 30_000
#: Done when the kernel is idle and no cell is queued or running: every prompt
#: of the first ``count`` code cells shows a number (or nothing: a cell whose
#: input is hidden), or a cell failed (run-all then stops; the test reports it).
RUN_FINISHED = """([sel, count]) => {
    const cells = [...document.querySelectorAll(sel + ' .jp-CodeCell')].slice(0, count ?? undefined);
    const prompts = cells.map(c => (c.querySelector('.jp-InputPrompt')?.textContent ?? '').trim());
    const idle = document.querySelector(sel + " .jp-Notebook-ExecutionIndicator[data-status='idle']");
    if (!idle || prompts.some(p => p.includes('*'))) return false;
    const failed = document.querySelector(sel + ' .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
    return Boolean(failed) || (prompts.length > 0 && prompts.every(p => p === '' || /^\\[\\d+\\]:$/.test(p)));
}"""
KERNEL_READY = """(sel) => {
    const name = document.querySelector(sel + ' .jp-Toolbar-kernelName')?.textContent ?? '';
    const idle = document.querySelector(sel + " .jp-Notebook-ExecutionIndicator[data-status='idle']");
    return Boolean(idle) && name.trim() !== '' && !name.includes('No Kernel');
}"""


@pytest.fixture
def lab_page(page: Page, lab: Lab) -> Iterator[Page]:
    """A page on the lab; afterwards every kernel is shut down, so a notebook
    opened by the next test starts with a fresh kernel."""
    try:
        yield page
    finally:
        page.context.close()
        lab.end_sessions()


def open_notebook(page: Page, lab: Lab, notebook: str) -> None:
    """Open a notebook and wait until its kernel has started and is idle, and
    every cell is on the page (JupyterLab adds them a few at a time)."""
    page.goto(lab.url(notebook))
    page.wait_for_function(KERNEL_READY, arg=VISIBLE, timeout=90_000)
    cells = len(json.loads((ROOT / "notebooks" / notebook).read_text())["cells"])
    expect(page.locator(f"{VISIBLE} .jp-Cell")).to_have_count(cells, timeout=SHOWN)


def run_menu(page: Page, command: str) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator(f'.lm-Menu [data-command="{command}"]').click()


def select_cleanup_cell(page: Page) -> None:
    """Make the last code cell, the notebook's cleanup, the active cell."""
    cleanup = page.locator(f"{VISIBLE} .jp-CodeCell").last
    expect(cleanup.locator(".jp-InputArea")).to_contain_text(".close()")
    cleanup.locator(".jp-InputPrompt").click()
    expect(cleanup).to_have_class(re.compile(r"\bjp-mod-active\b"))


def wait_until_run(page: Page, count: int | None = None) -> None:
    try:
        page.wait_for_function(RUN_FINISHED, arg=[VISIBLE, count], timeout=120_000)
    except PlaywrightTimeout:
        prompts = page.locator(f"{VISIBLE} .jp-CodeCell .jp-InputPrompt").all_text_contents()
        kernel = page.locator(f"{VISIBLE} .jp-Notebook-ExecutionIndicator").get_attribute(
            "data-status")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "run-timed-out.png"))
        raise AssertionError(f"cells still running after 120 s (kernel {kernel}): {prompts}")


def run_all_but_cleanup(page: Page) -> None:
    """Run every cell above the cleanup cell, as a student working down the notebook."""
    select_cleanup_cell(page)
    run_menu(page, "notebook:run-all-above")
    wait_until_run(page, page.locator(f"{VISIBLE} .jp-CodeCell").count() - 1)
    assert errors_on(page) == []


def run_cleanup(page: Page) -> None:
    select_cleanup_cell(page)
    run_menu(page, "notebook:run-all-below")
    wait_until_run(page)


def errors_on(page: Page) -> list[str]:
    return [text[:500] for text in page.locator(STDERR).all_text_contents()]


def screenshot(page: Page, name: str, at: Locator) -> None:
    """Save the notebook's view with the cell of ``at`` at the top, as
    build/screenshots/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    at.evaluate("element => element.closest('.jp-Cell').scrollIntoView({block: 'start'})")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def secret_on_page(page: Page) -> bool:
    """The secret in any text of the page (the whole notebook: cells are all in
    the page, checked below), in its HTML, or in any input but a password field."""
    text = page.locator(VISIBLE).inner_text()
    assert "Contents" in text, "the notebook's last cell (navigation) is not in the page's text"
    values = page.eval_on_selector_all(
        f"{VISIBLE} input:not([type=password]), {VISIBLE} textarea", "els => els.map(e => e.value)"
    )
    return SECRET in text or SECRET in page.content() or any(SECRET in v for v in values)


def something_listens(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def panel(page: Page, css_class: str) -> Locator:
    """The first panel of this kind, once its widgets have rendered."""
    found = page.locator(f"{VISIBLE} .{css_class}").first
    expect(found.locator(".amilab-status")).not_to_be_empty(timeout=SHOWN)
    return found


def test_the_course_has_notebooks_with_panels() -> None:
    assert {"03-connect.ipynb", "05-basic-actions.ipynb", "07-live-events.ipynb",
            "09-security.ipynb"} <= set(WITH_PANELS)


@pytest.mark.parametrize("notebook", WITH_PANELS)
def test_notebook_runs_in_jupyterlab_without_error_and_hides_the_secret(
    lab_page: Page, lab: Lab, notebook: str
) -> None:
    page = lab_page
    open_notebook(page, lab, notebook)
    run_all_but_cleanup(page)
    # one widget output per panel shown; each renders a moment after its cell ran
    widgets = page.locator(WIDGET_OUTPUT)
    panels = page.locator(f"{VISIBLE} .amilab-panel")
    expect(panels).to_have_count(widgets.count(), timeout=SHOWN)
    assert panels.count() > 0
    for index in range(panels.count()):
        expect(panels.nth(index).locator(".amilab-status")).not_to_be_empty(timeout=SHOWN)
    for connection in page.locator(f"{VISIBLE} .amilab-connection-panel").all():
        status = connection.locator(".amilab-status")
        if "Not connected" in status.inner_text():  # the notebook asks the student to log in
            host = connection.locator(".amilab-connection-host input").input_value()
            port = int(connection.locator(".amilab-connection-port input").input_value())
            if something_listens(host, port):
                pytest.skip(f"something listens at {host}:{port} (amilab serve?), so the panel "
                            "would log in there instead of starting its own simulated Asterisk")
            connection.locator("button.amilab-connection-login").click()
            expect(status).to_contain_text("Logged in as", timeout=SHOWN)
        expect(status).to_contain_text("simulated Asterisk 22 in this kernel")
    screenshot(page, notebook.removesuffix(".ipynb"), panels.first)
    assert not secret_on_page(page)

    run_cleanup(page)
    assert errors_on(page) == []
    expect(page.locator(f"{VISIBLE} .amilab-panel")).to_have_count(0, timeout=SHOWN)  # closed
    assert not secret_on_page(page)


def test_connection_panel_logs_in_on_the_simulated_asterisk(lab_page: Page, lab: Lab) -> None:
    page = lab_page
    open_notebook(page, lab, "03-connect.ipynb")
    run_all_but_cleanup(page)
    connection = panel(page, "amilab-connection-panel")
    status = connection.locator(".amilab-status")
    expect(status).to_contain_text("Not logged in yet")
    expect(status).to_contain_text("simulated Asterisk 22 in this kernel")
    connection.locator("button.amilab-connection-login").click()
    expect(status).to_contain_text("Logged in as admin", timeout=SHOWN)
    expect(status).to_contain_text("simulated Asterisk 22 in this kernel")
    assert not secret_on_page(page)
    assert errors_on(page) == []


def test_calling_1002_from_the_phone_panel_fills_the_event_panel(lab_page: Page, lab: Lab) -> None:
    page = lab_page
    open_notebook(page, lab, "07-live-events.ipynb")
    run_all_but_cleanup(page)
    events = panel(page, "amilab-event-panel")
    phones = panel(page, "amilab-phone-panel")
    status = events.locator(".amilab-status")
    # The notebook paused the stream to study its call: clear it and start again.
    events.locator("button.amilab-event-clear").click()
    expect(status).to_contain_text(" 0 received", timeout=SHOWN)
    events.locator("button.amilab-event-toggle").click()
    expect(status).to_contain_text("live", timeout=SHOWN)
    table = events.locator("table.amilab-events")
    expect(table.locator("tbody tr")).to_have_count(0)

    def shown(*names: str) -> None:
        for name in names:
            expect(table.locator("td", has_text=re.compile(rf"^{name}$")).first).to_be_visible(
                timeout=SHOWN)

    phones.locator("button.amilab-phone-call").click()
    shown("Newchannel", "DialBegin")
    expect(phones.locator(".amilab-status")).to_contain_text("1001 dials 1002")
    phones.locator("button.amilab-phone-answer").click()
    shown("DialEnd", "BridgeEnter")
    phones.locator("button.amilab-phone-hangup-1002").click()
    shown("HangupRequest", "Hangup")
    expect(phones.locator(".amilab-status")).to_contain_text("1002 hung up")
    # the counts beside the table: two channels, each with its Newchannel and Hangup
    counts = events.locator("table.amilab-counts")
    for name in ("Newchannel", "Hangup"):
        row = counts.locator("tr", has=page.locator("td", has_text=re.compile(rf"^{name}$")))
        expect(row.locator("td").nth(1)).to_have_text("2", timeout=SHOWN)
    # The picture README.md shows (docs/img/live-events-panel.png): both panels, full width.
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()  # collapse
    expect(page.locator("#jp-left-stack")).to_be_hidden()
    outputs = page.locator(f"{VISIBLE} .jp-Cell", has=page.locator(".amilab-phone-panel"))\
        .locator(".jp-Cell-outputWrapper")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    outputs.screenshot(path=str(ARTIFACTS / "live-events-panel.png"))
    assert errors_on(page) == []


def test_action_panel_shows_the_bytes_and_the_response_table(lab_page: Page, lab: Lab) -> None:
    page = lab_page
    open_notebook(page, lab, "05-basic-actions.ipynb")
    run_all_but_cleanup(page)
    actions = panel(page, "amilab-action-panel")
    actions.locator(".amilab-action-name select").select_option("Ping")
    actions.locator("button.amilab-action-send").click()
    expect(actions.locator(".amilab-status")).to_have_text("Ping: Success", timeout=SHOWN)
    raw = actions.locator(".amilab-raw")
    expect(raw).to_contain_text("Action: Ping")
    expect(raw).to_contain_text("Response: Success")
    expect(raw).to_contain_text("Ping: Pong")
    response = actions.locator(".amilab-response table")
    expect(response.locator("tr", has_text="Ping")).to_contain_text("Pong")
    assert errors_on(page) == []


def test_monitor_is_denied_originate_and_command_but_may_ping(lab_page: Page, lab: Lab) -> None:
    page = lab_page
    open_notebook(page, lab, "09-security.ipynb")
    run_all_but_cleanup(page)
    actions = panel(page, "amilab-action-panel")
    status, raw = actions.locator(".amilab-status"), actions.locator(".amilab-raw")
    expect(status).to_have_text("Originate: Error: Permission denied")
    actions.locator(".amilab-action-name select").select_option("Command")
    actions.locator("button.amilab-action-send").click()
    expect(status).to_have_text("Command: Error: Permission denied", timeout=SHOWN)
    expect(raw).to_contain_text("Action: Command")
    expect(raw).to_contain_text("Message: Permission denied")
    actions.locator(".amilab-action-name select").select_option("Ping")
    actions.locator("button.amilab-action-send").click()
    expect(status).to_have_text("Ping: Success", timeout=SHOWN)
    expect(raw).to_contain_text("Ping: Pong")
    assert errors_on(page) == []
