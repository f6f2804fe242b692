"""The CLI: --help everywhere, and one-line errors with a non-zero exit on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_help_lists_every_command(run_cli) -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("config", "data", "masks", "train", "sample", "evaluate", "profile", "report", "weights"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("scale: smoke\nsacle: full\n", "unknown key 'sacle' (did you mean 'scale'?)"),
        ("sample:\n  steps: many\n", "config.sample.steps: expected an integer"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(run_cli, tmp_path: Path, yaml_text: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text)
    result = run_cli("--config", str(bad), "config", "validate")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_config_show_round_trips(run_cli, tmp_path: Path) -> None:
    shown = run_cli("config", "show")
    assert shown.returncode == 0
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(shown.stdout)
    assert run_cli("--config", str(resolved), "config", "hash").stdout == run_cli("config", "hash").stdout


def test_weights_list_names_source_licence_and_place(run_cli, tmp_path: Path) -> None:
    from moebius.weights import list_weights

    result = run_cli("weights", "list", env={"MOEBIUS_WEIGHTS_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    for entry in list_weights():
        assert entry.key in result.stdout and entry.licence in result.stdout
    assert f"put it at {tmp_path}" in result.stdout  # nothing is present in an empty weights dir
