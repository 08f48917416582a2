from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bertcls.cli import COMMANDS, available, main


def test_top_help_lists_every_available_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for c in available():
        assert f"  {c.name}" in out
    assert {"train", "evaluate", "predict"} <= {c.name for c in available()}


@pytest.mark.parametrize("cmd", [c.name for c in COMMANDS])
def test_each_command_help(cmd, capsys):
    if cmd not in {c.name for c in available()}:
        pytest.skip(f"{cmd} not in this build")
    with pytest.raises(SystemExit) as e:
        main(cmd.split() + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert f"bertcls {cmd}" in out and "--config" in out


def test_unknown_command_exit_2(capsys):
    assert main(["fly"]) == 2
    assert "unknown command 'fly'" in capsys.readouterr().err


def test_console_script_runs_without_torch_import():
    code = "import sys; from bertcls.cli import main; main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"]])
def test_cli_runs_in_a_fresh_isolated_interpreter(argv):
    """``python -I``: no site customisation or PYTHON* variables that could pre-import modules the CLI
    uses (the bug: importlib.util used but never imported worked only where something else imported it)."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    code = (
        f"import sys; sys.path.insert(0, {src!r}); import importlib; "
        "sys.modules.pop('importlib.util', None); importlib.__dict__.pop('util', None); "
        f"sys.argv = ['bertcls', *{argv!r}]; from bertcls.cli import main; raise SystemExit(main())"
    )
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert ("commands:" if argv == ["--help"] else "--output-prefix") in done.stdout


def test_readme_lists_exactly_the_registry():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = [line.split("`")[1] for line in readme.splitlines() if line.startswith("| `bertcls ")]
    assert table == [f"bertcls {c.name}" for c in COMMANDS]
