"""Result records carry their provenance, and bad ones are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from moebius.config import config_from_dict, config_hash
from moebius.records import RecordError, make_record, read_records, write_records


def _record(**overrides):
    cfg = config_from_dict({"scale": "smoke", "seed": 3})
    kwargs = dict(
        model="moebius", benchmark="places2_test", metric="fid", value=12.5, n_images=12,
        weights_kind="trained", data_version="abc123",
    )
    kwargs.update(overrides)
    return cfg, make_record(cfg, **kwargs)


def test_record_has_provenance() -> None:
    cfg, rec = _record(settings={"cfg_scale": 2.5})
    assert rec["scale"] == "smoke" and rec["seed"] == 3
    assert rec["config_hash"] == config_hash(cfg)
    assert rec["settings"]["cfg_scale"] == 2.5
    assert rec["settings"]["sampler_start"] == cfg.sample.start  # which DEVIATION switch the run used
    assert rec["settings"]["balance"] == cfg.distill.balance
    assert rec["library_versions"]["torch"] != "absent"
    assert rec["git_commit"]


@pytest.mark.parametrize("bad", [{"weights_kind": "guessed"}, {"value": float("nan")}, {"value": "12"}])
def test_bad_records_are_refused(bad) -> None:
    with pytest.raises(RecordError):
        _record(**bad)


def test_round_trip_and_validation(tmp_path: Path) -> None:
    _, rec = _record()
    path = tmp_path / "r.json"
    write_records(path, [rec])
    (back,) = read_records([path])
    assert back["value"] == 12.5 and back["source_file"] == str(path)
    del rec["data_version"]
    with pytest.raises(RecordError, match="data_version"):
        write_records(tmp_path / "bad.json", [rec])
    assert not (tmp_path / "bad.json").exists()


@pytest.mark.hostile("a result record with no value: None without a reason, or a reason beside a number", "RecordError when it is made and when it is read back; a withheld record (\"too few\") keeps value None")
def test_withheld_records_carry_a_reason_not_a_number(tmp_path: Path) -> None:
    from moebius.records import shown_value

    _, rec = _record(metric="fid_bin", value=None, withheld="too few")
    assert rec["value"] is None and rec["withheld"] == "too few" and shown_value(rec) == "too few"
    write_records(tmp_path / "w.json", [rec])
    assert read_records([tmp_path / "w.json"])[0]["withheld"] == "too few"
    with pytest.raises(RecordError, match="not a number"):
        _record(value=None)
    with pytest.raises(RecordError, match="withheld"):
        _record(value=3.0, withheld="too few")
    del rec["withheld"]
    with pytest.raises(RecordError, match="no value"):
        write_records(tmp_path / "bad.json", [rec])
