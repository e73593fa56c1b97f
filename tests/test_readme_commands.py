"""Every command in the README's code blocks runs as written, on the tiny model (a hub id is swapped for `tiny`):
the CLI examples here, in order, in one folder; the start-the-app command's `app.py` by the `app_url` fixture, its
torchrun form by test_context_parallel.py; the run-the-tests command by CI itself (`.ci/run`)."""

import re
import shlex
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HUB_IDS = re.compile(r"BestWishYsh/Helios-(Distilled|Mid|Base)")


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readmes_commands_are_the_ones_this_suite_covers():
    commands = readme_commands()
    others = [c for c in commands if not c.startswith("python -m helios")]
    assert len(others) == 4 and others[0].endswith(".venv/bin/python app.py")
    assert others[1].startswith(".venv/bin/torchrun --standalone --nproc-per-node 2 app.py"), "test_context_parallel.py"
    assert others[2] == Path(ROOT / ".ci/run").read_text().splitlines()[-1]
    inner = re.fullmatch(r'\.venv/bin/python -m pytest -q -n 2 -m "not \((.*)\)"', others[3])
    registered = {m.split(":")[0] for m in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
                  ["ini_options"]["markers"]}
    assert inner and set(inner.group(1).split(" or ")) <= registered, "the inner loop deselects registered markers"
    assert len(commands) - len(others) == 4


def test_the_readmes_cli_examples_run_as_written(tmp_path, cli):
    (tmp_path / "assets").symlink_to(ROOT / "assets")
    for command in (c for c in readme_commands() if c.startswith("python -m helios")):
        words = shlex.split(HUB_IDS.sub("tiny", command.split("  #")[0]))
        assert words[:4] == ["python", "-m", "helios", "generate"], command
        made = cli(*words[4:], cwd=tmp_path)
        assert made.returncode == 0, f"{command}\n{made.stderr[-2000:]}"
        out = tmp_path / words[words.index("--out") + 1]
        assert out.exists(), command
    assert sorted(p.suffix for p in (tmp_path / "grid").iterdir()).count(".mp4") == 4
    assert (tmp_path / "grid" / "runs.csv").exists()
