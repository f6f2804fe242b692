"""The CLI: --help everywhere, and one-line errors with a non-zero exit on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]

# Every command of `moebius`, as the workflow, the README and the docs call them. A command added or
# removed must be added or removed here too.
EXPECTED_COMMANDS = {
    "config hash", "config resolve", "config schema", "config show", "config validate",
    "data benchmark", "data download", "data extract", "data fetch", "data rehearsal-sources", "data smoke", "data verify",
    "masks generate", "masks import", "masks stats",
    "train compare-kd", "train distill", "train finetune", "train official", "train teacher", "train vae",
    "sample", "sample-suite", "score", "score-suite", "evaluate", "profile", "report", "trace", "inpaint", "leak",
    "weights check", "weights convert-mat", "weights export-gan", "weights generate", "weights list",
}


def _commands(group, prefix: tuple[str, ...] = ()) -> set[str]:
    """Every leaf command of a click group, as the words one types ('train distill')."""
    import click

    found = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= _commands(command, (*prefix, name))
        else:
            found.add(" ".join((*prefix, name)))
    return found


def test_the_cli_has_exactly_the_expected_commands() -> None:
    from moebius.cli import cli

    assert _commands(cli) == EXPECTED_COMMANDS


def test_help_runs_for_every_command(run_cli) -> None:
    from click.testing import CliRunner

    from moebius.cli import cli

    top = run_cli("--help")  # the installed entry point
    assert top.returncode == 0 and "Usage: moebius" in top.stdout
    runner = CliRunner()
    config = ["--config", str(ROOT / "config" / "smoke.yaml")]  # the group loads it before any --help
    for command in sorted(EXPECTED_COMMANDS):
        result = runner.invoke(cli, [*config, *command.split(), "--help"], prog_name="moebius")
        assert result.exit_code == 0, (command, result.output)
        assert f"Usage: moebius {command} [OPTIONS]" in result.output, (command, result.output)


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


@pytest.mark.hostile("a stale MOEBIUS_CONFIG=<another scale's file> left in the environment",
                     "ignored: the config is the --config files, else config/smoke.yaml")
def test_the_config_comes_from_the_command_line_only(run_cli) -> None:
    default = run_cli("config", "hash")
    assert default.returncode == 0, default.stderr
    stale = run_cli("config", "hash", env={"MOEBIUS_CONFIG": "config/full.yaml"})
    assert stale.stdout == default.stdout
    assert run_cli("--config", "config/full.yaml", "config", "hash").stdout != default.stdout


def test_config_resolve_writes_what_the_files_and_sets_resolve_to(run_cli, tmp_path: Path) -> None:
    from moebius.config import config_hash, load_config

    outs = [tmp_path / "logs" / "config" / "resolved.yaml", tmp_path / "copy.yaml"]
    expected = load_config("config/smoke.yaml", overrides={"sample": {"steps": 3}, "distill": {"train": {"lr": 5e-4}}})
    result = run_cli("config", "resolve", "--set", "sample.steps=3", "--set", "distill.train.lr=5e-4",
                     "--expect-hash", config_hash(expected), *[f"--out={o}" for o in outs])
    assert result.returncode == 0, result.stderr
    for out in outs:  # the resolved file loads, alone, to the same config
        assert load_config(out) == expected
    assert [p.name for p in outs[0].parent.iterdir()] == ["resolved.yaml"]  # atomic: no temporary left


@pytest.mark.hostile("`config resolve --expect-hash H` after a config file changed (the DAG was planned with H)",
                     "exit 2, one line naming both hashes; no file written")
def test_config_resolve_refuses_a_config_changed_since_planning(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "resolved.yaml"
    result = run_cli("config", "resolve", "--expect-hash", "000000000000", "--out", str(out))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "not 000000000000" in lines[0], result.stderr
    assert not out.exists()


@pytest.mark.hostile("`data fetch --sources DIR` under the full-scale config, or a rehearsal fetch without --sources",
                     "one line naming --sources and data.source, exit 2, nothing downloaded")
@pytest.mark.parametrize("config, sources", [("config/full.yaml", True), ("config/rehearsal.yaml", False)])
def test_fetch_sources_only_with_the_rehearsal_source(run_cli, tmp_path: Path, config: str, sources: bool) -> None:
    extra = ["--sources", str(tmp_path)] if sources else []
    result = run_cli("--config", config, "data", "fetch", "--dataset", "ffhq", "--split", "val",
                     "--raw-dir", str(tmp_path / "raw"), "--out-root", str(tmp_path / "out"), *extra)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "--sources goes with data.source rehearsal" in result.stderr
    assert not (tmp_path / "raw").exists()
