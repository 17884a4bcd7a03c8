"""The README stays true: it stays short, its quick start runs on the sample image it names, its CLI reference names
every command and option, and its Python API example runs."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import click
from click.testing import CliRunner

from leechcodec.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SAMPLE = "docs/sample.png"


def _block(heading: str, lang: str) -> str:
    """The first ```lang block after the Markdown heading."""
    section = README.split(f"\n{heading}\n", 1)[1]
    return re.search(rf"```{lang}\n(.*?)```", section, re.DOTALL).group(1)


def _in_copy_with_sample(tmp_path, monkeypatch) -> None:
    """Run from a fresh folder holding only docs/sample.png, as the README's relative paths expect."""
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / SAMPLE, tmp_path / SAMPLE)
    monkeypatch.chdir(tmp_path)


def test_readme_is_short():
    assert len(README.encode()) <= 15_000


def test_quick_start_scripts_and_sample_exist():
    for path in ("bin/leechcodec", "bin/test", ".ci/run", SAMPLE, "docs/sample-LICENSE.md", "docs/results.md"):
        assert (ROOT / path).exists(), path
        assert path in README, path


def test_quick_start_commands_run_on_the_sample(tmp_path, monkeypatch):
    """Each `bin/leechcodec …` line of the quick start runs as written (in-process), and the bpp its comment states
    is the one the encoder prints."""
    from PIL import Image

    _in_copy_with_sample(tmp_path, monkeypatch)
    lines = [line.split("#", 1) for line in _block("## Quick start", "bash").splitlines()]
    commands = [(shlex.split(cmd), note) for cmd, *note in lines if cmd.strip().startswith("bin/leechcodec ")]
    assert [args[1] for args, _ in commands] == ["encode", "decode"]
    outputs = []
    for args, note in commands:
        r = CliRunner().invoke(main, args[1:])
        assert r.exit_code == 0, r.output
        outputs.append(r.output)
        claimed = re.search(r"(\d+\.\d+) bpp", note[0] if note else "")
        if claimed:
            printed = float(re.search(r"(\d+\.\d+) bpp", r.output).group(1))
            assert abs(printed - float(claimed.group(1))) < 5e-4, (r.output, note)
    decoded = Path(commands[1][0][commands[1][0].index("-o") + 1])
    assert Image.open(decoded).size == Image.open(SAMPLE).size


def test_cli_reference_lists_every_command_and_option():
    assert main.commands
    for name, cmd in main.commands.items():
        assert f"leechcodec {name}" in README, name
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert any(opt in README for opt in param.opts), (name, param.opts)


def test_python_api_example_runs(tmp_path, monkeypatch):
    code = _block("## Python API", "python")
    assert SAMPLE in code
    _in_copy_with_sample(tmp_path, monkeypatch)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - runs the README example on purpose
    assert isinstance(scope["data"], bytes) and scope["data"][:4] == b"\x89LSQ"
