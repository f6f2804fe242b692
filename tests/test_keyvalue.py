"""moebius.keyvalue: the one KEY=VALUE parser of the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from moebius.config import load_config
from moebius.errors import ConfigError
from moebius.keyvalue import overrides, parse_pairs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.hostile("`--run NAME=DIR` whose DIR holds a comma and an `=` (a path, not two items)",
                     "the whole path is the value; the item is split at its first `=` only")
def test_a_value_keeps_commas_and_equals_signs() -> None:
    assert parse_pairs(["exp9=/runs/a,b=c/exp9", "nokd=x"], "--run") == {"exp9": "/runs/a,b=c/exp9", "nokd": "x"}


@pytest.mark.hostile("KEY=VALUE options given `nokey`, `=x`, `k=` or the same key twice",
                     "one-line ConfigError naming the option and the item")
@pytest.mark.parametrize("items, message", [
    (["novalue"], "--run expects KEY=VALUE, got 'novalue'"),
    (["=x"], "--run expects KEY=VALUE, got '=x'"),
    (["k="], "--run expects KEY=VALUE, got 'k='"),
    (["a=1", "a=2"], "--run: 'a' given twice"),
])
def test_slips_are_one_line_errors(items: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pairs(items, "--run")
    assert str(err.value) == message


def test_typed_values_read_as_a_config_file_reads_them() -> None:
    got = parse_pairs(["n=3", "lr=2e-4", "on=true", "name=paper", "xs=[1, 2]"], "--setting", typed=True)
    assert got == {"n": 3, "lr": pytest.approx(2e-4), "on": True, "name": "paper", "xs": [1, 2]}
    assert isinstance(got["lr"], float)  # PyYAML alone reads 2e-4 as a string


def test_overrides_nest_dotted_keys_and_load_like_a_file() -> None:
    sets = overrides(["sample.steps=3", "distill.train.lr=5e-4", 'eval={"bootstrap": 7}'])
    assert sets == {"sample": {"steps": 3}, "distill": {"train": {"lr": pytest.approx(5e-4)}}, "eval": {"bootstrap": 7}}
    cfg = load_config(ROOT / "config" / "smoke.yaml", overrides=sets)
    assert (cfg.sample.steps, cfg.eval.bootstrap) == (3, 7)
    assert cfg.distill.train.lr == pytest.approx(5e-4) and cfg.distill.train.steps == 30  # siblings kept


@pytest.mark.hostile("`config resolve --set a=1 --set a.b=2` (a value and a section for one key), `--set a..b=1`",
                     "one-line ConfigError naming the key; nothing merged")
@pytest.mark.parametrize("items", [["sample=1", "sample.steps=2"], ["sample.steps=2", "sample=1"], ["sample..steps=1"]])
def test_conflicting_or_malformed_keys_are_refused(items: list[str]) -> None:
    with pytest.raises(ConfigError, match="--set: 'sample"):
        overrides(items)
