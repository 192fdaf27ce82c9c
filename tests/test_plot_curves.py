"""Learning curves: legs of one run join into one curve."""
import json

import pytest

from launch.plot_curves import join_legs, read_curve


def write_run(tmp_path, name, records):
    run = tmp_path / name
    run.mkdir()
    with open(run / "metrics.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return str(run)


def test_a_later_leg_continues_from_the_end_of_the_leg_before(tmp_path):
    first = write_run(tmp_path, "a", [
        {"step": 50, "loss": 0.2},  # a training record: not part of the curve
        {"step": 500, "train_minutes": 2.0, "eval_motion": 0.1},
        {"step": 1000, "train_minutes": 4.5, "eval_motion": 0.2}])
    second = write_run(tmp_path, "b", [{"step": 1000, "train_minutes": 3.0, "eval_motion": 0.3}])
    joined = join_legs([read_curve(first), read_curve(second)])
    assert [(r["step"], r["train_minutes"], r["eval_motion"]) for r in joined] == [
        (500, 2.0, 0.1), (1000, 4.5, 0.2), (2000, 7.5, 0.3)]
    assert join_legs([read_curve(first)]) == read_curve(first)


def test_a_workdir_without_metrics_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="training workdir"):
        read_curve(str(tmp_path))
