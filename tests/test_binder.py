"""The Binder demo: what repo2docker builds from binder/ must run the course.

Binder reads only binder/ when it exists (pyproject.toml at the root is then
ignored), so binder/requirements.txt must install the kit itself and
binder/runtime.txt must ask for Python 3.11 (pandas 3 does not install on 3.10).
These tests check both without Docker: a fresh virtual environment made the way
repo2docker makes it runs every notebook, and repo2docker's generated
Dockerfile shows the Python version and the install step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
#: What Binder's base image already has beside the requirements: a kernel and a runner.
BINDER_BASE = ["ipykernel", "nbclient"]


def test_binder_asks_for_python_311() -> None:
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"


def test_binder_requirements_install_the_kit_from_the_repository() -> None:
    lines = [
        line.split("#", 1)[0].strip()
        for line in (BINDER / "requirements.txt").read_text().splitlines()
    ]
    assert [line for line in lines if line] in (["."], ["-e ."])


def test_repo2docker_builds_python_311_and_installs_the_kit_after_copying_it() -> None:
    repo2docker = shutil.which("repo2docker", path=str(Path(sys.executable).parent))
    if repo2docker is None:
        pytest.skip("repo2docker is not installed (it comes with the test extra)")
    done = subprocess.run(
        [repo2docker, "--no-build", "--debug", "--no-run", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-2000:]
    assert "python=3.11" in out
    copy_source = out.index("COPY --chown=0:0 src/ ${REPO_DIR}/")
    install = out.index('pip install --no-cache-dir -r "binder/requirements.txt"')
    assert copy_source < install, "the kit must be installed after the repository is copied"


@pytest.mark.timeout(900)
def test_a_fresh_binder_environment_runs_every_notebook(tmp_path: Path) -> None:
    env_dir = tmp_path / "binder-env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # From the repository root, as repo2docker runs it.
    subprocess.run([*pip, "-r", "binder/requirements.txt", *BINDER_BASE], cwd=ROOT, check=True,
                   timeout=600)
    work = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", work)
    script = (
        "import sys, nbformat\n"
        "from nbclient import NotebookClient\n"
        "for path in sys.argv[1:]:\n"
        "    nb = nbformat.read(path, as_version=4)\n"
        "    NotebookClient(nb, timeout=120, kernel_name='python3',\n"
        "                   resources={'metadata': {'path': str(__import__('pathlib').Path(path).parent)}}).execute()\n"
        "    print('ran', path, flush=True)\n"
    )
    # The runner is the Binder environment's Python, so its kernel is too.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMI_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [str(python), "-c", script, *(str(work / p.name) for p in NOTEBOOKS)],
        env=env, cwd=work, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert done.stdout.count("ran ") == len(NOTEBOOKS)
