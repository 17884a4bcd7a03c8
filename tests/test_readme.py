"""The README stays true: its quick start names real scripts, its CLI reference names every command and option,
and its Python API example runs."""

from __future__ import annotations

import re
from pathlib import Path

import click

from leechcodec.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_quick_start_scripts_exist():
    root = Path(__file__).resolve().parents[1]
    for script in ("bin/leechcodec", "bin/test", ".ci/run"):
        assert (root / script).exists() and script in README


def test_cli_reference_lists_every_command_and_option():
    ctx = click.Context(main)
    for name, cmd in main.commands.items():
        assert f"leechcodec {name}" in README, name
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert any(opt in README for opt in param.opts), (name, param.opts)
    assert ctx


def test_python_api_example_runs(tmp_path, photo, monkeypatch):
    from PIL import Image

    code = re.search(r"```python\n(.*?)```", README, re.DOTALL).group(1)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"rgb": photo})  # noqa: S102 - runs the README example on purpose
