"""The direction check: direction-only batches, the probe's curve, and its config overrides."""
import json

import numpy as np
import pytest

from configs import stunet_shapes
from launch import direction_check as check
from lumiere_jax.data import shapes


@pytest.mark.parametrize("subjects", ["one", "every"])
def test_batches_translate_quickly_and_one_subject_is_one_subject(subjects):
    specs = check.direction_specs(np.random.default_rng(0), 64, subjects)
    assert {s.motion for s in specs} == set(check.DIRECTIONS)
    assert all(s.speed == "quickly" for s in specs)
    looks = {(s.shape, s.colour, s.size, s.background) for s in specs}
    assert (len(looks) == 1) == (subjects == "one")
    for spec in specs:  # every path stays in the frame, as the data's do
        cx, cy, radius, _ = shapes.shape_poses(spec, shapes.clip_times(16))
        assert (cx - radius).min() >= 0 and (cx + radius).max() <= 1
        assert (cy - radius).min() >= 0 and (cy + radius).max() <= 1


def test_overrides_set_literals_and_refuse_what_is_not_a_config_key():
    config = stunet_shapes.get_config("variant=tiny")
    check.override(config, "model.temporal.space_time_position=True")
    check.override(config, "diffusion.focus_t_min=0.97")
    assert config.model.temporal.space_time_position is True
    assert config.diffusion.focus_t_min == 0.97
    with pytest.raises(ValueError, match="use KEY=VALUE"):
        check.override(config, "diffusion.focus_t_min")
    with pytest.raises(ValueError, match="no section 'nowhere'"):
        check.override(config, "nowhere.key=1")


def test_a_run_probes_four_times_and_writes_its_curve(tmp_path, capsys):
    out = tmp_path / "check"
    assert check.main(["--variant", "tiny", "--out", str(out), "--steps", "4",
                       "--set", "model.temporal.space_time_position=True"]) == 0
    records = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(set(r["drift_ratio"]) == {str(t) for t in check.PROBE_TIMES} for r in records)
    assert all(np.isfinite(list(r["drift_ratio"].values())).all() for r in records)
    assert (out / "step_4" / "config.json").is_file()
    assert json.loads((out / "step_4" / "config.json").read_text())["model"]["temporal"][
        "space_time_position"] is True
    assert capsys.readouterr().out.count("drift ratio") == 4
    with pytest.raises(SystemExit):
        check.main(["--variant", "tiny", "--out", str(out), "--steps", "0"])
