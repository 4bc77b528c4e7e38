"""The package as a user installs it: `pipx install` of this checkout into a fresh
folder, used from a folder outside the checkout. It must bring no torch (the default
install is lean; sentence-transformers is the `st` extra), carry its default settings
and prompts, keep its state in the user's data folder, and ingest and answer.

Slow (a real install from the package index: about a minute with a warm pip cache) and
marked ``install``; ``pytest -m "not install"`` skips it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SEED

pytestmark = [pytest.mark.slow, pytest.mark.install]

QUESTION = "霍城县江苏医院综合病房大楼总投资多少?"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pipx = shutil.which("pipx", path=str(Path(sys.executable).parent))
    if pipx is None:
        pytest.skip("pipx is not installed (it comes with the dev extra)")
    base = tmp_path_factory.mktemp("pipx")
    # a copy of the checkout, so the build leaves nothing in the developer's tree
    source = base / "checkout"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "index", "build", "dist", "*.egg-info", "__pycache__",
        ".pytest_cache", ".ruff_cache", "reports", "train"))
    env = {**os.environ, "PIPX_HOME": str(base / "pipx"), "PIPX_BIN_DIR": str(base / "bin"),
           "PIPX_MAN_DIR": str(base / "man")}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run([pipx, "install", str(source)], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"qabot": base / "bin" / "qabot",
            "python": base / "pipx" / "venvs" / "qabot" / "bin" / "python",
            "base": base}


def user_env(home: Path) -> dict[str, str]:
    """A user with an empty home and none of this checkout's settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("QABOT_", "XDG_", "VIRTUAL_ENV"))}
    return {**env, "HOME": str(home)}


def test_the_default_install_has_no_torch(installed: dict[str, Path]) -> None:
    found = subprocess.run(
        [str(installed["python"]), "-c",
         "import importlib.util as u; print([m for m in ('torch', 'sentence_transformers') "
         "if u.find_spec(m)])"], capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_it_ingests_and_answers_outside_a_checkout(installed: dict[str, Path],
                                                   tmp_path: Path) -> None:
    home, work, docs = tmp_path / "home", tmp_path / "work", tmp_path / "my docs"
    for d in (home, work, docs):
        d.mkdir()
    shutil.copy(SEED, docs / SEED.name)
    env = user_env(home)

    def qabot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(installed["qabot"]), *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=300)

    bare = qabot("ingest")  # no documents folder preset outside a checkout
    assert bare.returncode == 2 and "qabot ingest PATH" in bare.stderr, bare.stderr
    ingested = qabot("ingest", str(docs))
    assert ingested.returncode == 0, ingested.stderr
    assert "Indexed 1 document, " in ingested.stdout
    state = home / ".local" / "share" / "qabot"
    assert (state / "CURRENT").is_file()  # the user's data folder...
    assert not any(work.iterdir())  # ...not the folder it ran from

    asked = qabot("ask", "--json", QUESTION)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["short_answer"] == "1.4亿元" and answer["mode"] == "guided"
    assert answer["citations"][0]["source"] == (docs / SEED.name).resolve().as_posix()

    shown = qabot("config")
    assert f'"{state}"' in shown.stdout  # paths.home
    prompts = subprocess.run(
        [str(installed["python"]), "-c",
         "from bot.config import load_settings; print(load_settings().prompts_dir)"],
        cwd=work, env=env, capture_output=True, text=True, timeout=60)
    folder = Path(prompts.stdout.strip())
    assert "site-packages" in str(folder) and (folder / "system.zh.md").is_file()
