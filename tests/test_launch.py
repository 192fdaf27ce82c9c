"""Launch tooling: the TPU scripts (syntax, dry-run commands, the worker-side commands run against a
fake worker), the sweep runner, and the paper-scale config's size."""
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from configs import ssr_paper, stunet_paper
from configs.sweeps import t2i_lr
from launch import sweep
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from limits import SAFETY_LIMIT_S

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
SCRIPTS = sorted(LAUNCH.glob("*.sh"))
RUNNABLE = [path.name for path in SCRIPTS if path.name not in ("env.sh", "lib.sh")]
WORKDIR = "gs://test-bucket/runs/my-run"


def env_sh_names() -> set[str]:
    return set(re.findall(r"^export (\w+)=", (LAUNCH / "env.sh").read_text(), re.M))


@pytest.fixture
def env():
    """The caller's environment without any launch settings, plus a test TPU and bucket."""
    clean = {k: v for k, v in os.environ.items() if k not in env_sh_names() and k != "DRY_RUN"}
    clean.update(TPU_NAME="test-pod", TPU_ZONE="zone-x", WORKDIR_ROOT="gs://test-bucket/runs")
    return clean


def launch(script: str, *args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", str(LAUNCH / script), *args], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=SAFETY_LIMIT_S)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def dry_run(script: str, *args: str, env: dict) -> list[list[str]]:
    """The commands a script prints under --dry-run, split back into words."""
    lines = launch(script, "--dry-run", *args, env=env).stdout.splitlines()
    return [shlex.split(line) for line in lines if line.strip()]


def remote_command(words: list[str]) -> str:
    """The --command of a `gcloud compute tpus tpu-vm ssh` command."""
    assert words[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"], words
    return words[words.index("--command") + 1]


# (a) syntax and lint.

@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=SAFETY_LIMIT_S)


def test_scripts_pass_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(["shellcheck", "-x", *map(str, SCRIPTS)], cwd=LAUNCH,
                            capture_output=True, text=True, timeout=SAFETY_LIMIT_S)
    assert result.returncode == 0, result.stdout


# (b) dry runs print the exact commands; --help works.

@pytest.mark.parametrize("script", RUNNABLE)
def test_help(script, env):
    assert "Usage: launch/" + script in launch(script, "--help", env=env).stdout


@pytest.mark.parametrize("script", RUNNABLE)
def test_unknown_option_is_refused(script, env):
    result = launch(script, "--no-such-option", env=env, check=False)
    assert result.returncode != 0 and "--no-such-option" in result.stderr


def test_create_and_delete(env):
    [create] = dry_run("create_tpu.sh", "--type", "v5p-128", env=env)
    assert create[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "test-pod"]
    assert {"--zone=zone-x", "--accelerator-type=v5p-128", "--version=v2-alpha-tpuv5"} <= set(create)
    [queued] = dry_run("create_tpu.sh", "--queued", "--spot", env=env)
    assert queued[:5] == ["gcloud", "compute", "tpus", "queued-resources", "create"]
    assert {"--node-id=test-pod", "--runtime-version=v2-alpha-tpuv5", "--spot"} <= set(queued)
    [delete] = dry_run("delete_tpu.sh", env=env)
    assert delete[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "test-pod"]
    assert "--quiet" in delete
    env["DRY_RUN"] = "1"  # the environment form of --dry-run
    assert launch("create_tpu.sh", env=env).stdout.startswith("gcloud compute tpus tpu-vm create")


def test_setup_workers(env):
    commands = dry_run("setup_workers.sh", env=env)
    scp = next(c for c in commands if c[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"])
    assert "--worker=all" in scp and "test-pod:lumiere-jax.tar.gz" in scp
    ssh = [c for c in commands if c[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]]
    assert ssh and all("--worker=all" in c for c in ssh)
    install = next(remote_command(c) for c in ssh if "pip install" in remote_command(c))
    assert '-e ".[tpu]" -c launch/requirements-tpu.txt' in install
    cloned = [remote_command(c) for c in dry_run("setup_workers.sh", "--git", "https://x/y.git",
                                                 "--ref", "v1", env=env)]
    assert "fetch -q --depth 1 https://x/y.git v1" in cloned[0]


def test_requirements_pin_what_the_tests_use():
    pins = dict(line.split("==") for line in (LAUNCH / "requirements-tpu.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    import flax
    assert pins["jax"] == jax.__version__ and pins["flax"] == flax.__version__
    assert "libtpu" in pins


def test_train_and_resume(env):
    args = ("--workdir", WORKDIR, "--config.optim.learning_rate=0.0001")
    [train] = dry_run("train.sh", *args, env=env)
    assert train[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "test-pod"]
    assert "--worker=all" in train and "--zone=zone-x" in train
    remote = remote_command(train)
    main = (".venv/bin/python -m lumiere_jax.main --config configs/stunet_paper.py "
            f"--workdir {WORKDIR} --distributed --config.optim.learning_rate=0.0001")
    assert main in remote and "nohup" in remote
    assert 'logs/worker-$(hostname).log' in remote and "LIBTPU_INIT_ARGS=" in remote
    assert dry_run("resume.sh", *args, env=env) == [train]
    # The default workdir is WORKDIR_ROOT/LUMIERE_RUN; the placeholder bucket is refused.
    [default] = dry_run("train.sh", env=env)
    assert "--workdir gs://test-bucket/runs/stunet_paper" in remote_command(default)
    del env["WORKDIR_ROOT"]
    refused = launch("train.sh", env=env, check=False)
    assert refused.returncode != 0 and "set the workdir" in refused.stderr


def test_stop_and_logs(env):
    [stop] = dry_run("stop.sh", env=env)
    assert "--worker=all" in stop and "kill -TERM" in remote_command(stop)
    for args in ((), ("--follow",), ("--status",)):
        [show] = dry_run("logs.sh", *args, env=env)
        assert "--worker=all" in show
    fetch = dry_run("logs.sh", "--fetch", "out", "--workdir", WORKDIR, env=env)
    assert f"{WORKDIR}/logs/" in remote_command(fetch[0])
    assert fetch[-1] == ["gcloud", "storage", "cp", f"{WORKDIR}/logs/*", "out/"]


def test_run_executes_what_dry_run_prints(env, tmp_path):
    """Without --dry-run the scripts run exactly the printed commands (a fake gcloud records them)."""
    fake = tmp_path / "bin" / "gcloud"
    fake.parent.mkdir()
    fake.write_text('#!/usr/bin/env bash\nfor a in "$@"; do printf "%s\\0" "$a"; done >> "$RECORD"\n'
                    'printf "\\n\\0" >> "$RECORD"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env.update(PATH=f"{fake.parent}:{env['PATH']}", RECORD=str(tmp_path / "calls"))
    args = ("--workdir", WORKDIR, "--config.data.batch_size=8")
    printed = dry_run("train.sh", *args, env=env) + dry_run("stop.sh", env=env)
    launch("train.sh", *args, env=env)
    launch("stop.sh", env=env)
    calls = (tmp_path / "calls").read_text().split("\n\0")
    assert [["gcloud", *call.rstrip("\0").split("\0")] for call in calls if call] == printed


def test_worker_commands_on_a_fake_worker(env, tmp_path):
    """train/logs/stop's --command strings run in a shell, with a fake python that exits 3."""
    repo = tmp_path / "lumiere-jax"
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/usr/bin/env bash\necho "args: $*"\necho "libtpu: $LIBTPU_INIT_ARGS"\nexit 3\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)

    def on_worker(script, *args):
        command = remote_command(dry_run(script, *args, env=env)[0])
        return subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True,
                              text=True, timeout=SAFETY_LIMIT_S)

    waited = on_worker("train.sh", "--workdir", WORKDIR, "--wait")
    assert waited.returncode == 3, waited.stderr
    [log] = (repo / "logs").glob("worker-*.log")
    assert f"args: -m lumiere_jax.main --config configs/stunet_paper.py --workdir {WORKDIR} " \
           "--distributed" in log.read_text()
    assert "libtpu: --xla_tpu" in log.read_text()
    assert "exit code 3" in on_worker("logs.sh", "--status").stdout
    assert "args:" in on_worker("logs.sh", "--lines", "5").stdout
    assert "no training running" in on_worker("stop.sh").stdout


# (c) sweeps.

def test_sweep_dry_run_prints_one_command_per_point(tmp_path):
    points = t2i_lr.get_sweep()
    result = subprocess.run([sys.executable, "-m", "launch.sweep", "--sweep",
                             "configs/sweeps/t2i_lr.py", "--root", str(tmp_path), "--dry-run",
                             "--", "--config.optim.total_steps=10"],
                            cwd=REPO, capture_output=True, text=True, timeout=SAFETY_LIMIT_S, check=True)
    commands = [shlex.split(line) for line in result.stdout.splitlines()]
    assert len(commands) == len(points) > 1
    workdirs = [c[c.index("--workdir") + 1] for c in commands]
    assert len(set(workdirs)) == len(points)
    for point, command, workdir in zip(points, commands, workdirs):
        assert command[1:5] == ["-m", "lumiere_jax.main", "--config", t2i_lr.BASE_CONFIG]
        assert workdir.startswith(f"{tmp_path}/t2i_lr/")
        flags = {f"--config.{key}={value}" for key, value in point.items()}
        assert flags <= set(command) and command[-1] == "--config.optim.total_steps=10"


def test_sweep_tpu_launcher_goes_through_train_sh(capsys):
    assert sweep.main(["--sweep", "configs/sweeps/t2i_lr.py", "--launcher", "tpu",
                       "--root", "gs://b/sweeps", "--dry-run"]) == 0
    commands = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    assert len(commands) == len(t2i_lr.get_sweep())
    assert all(c[:2] == ["bash", "launch/train.sh"] and "--wait" in c for c in commands)
    assert commands[0][commands[0].index("--workdir") + 1].startswith("gs://b/sweeps/t2i_lr/")


def test_sweep_runs_sequentially_and_stops_on_failure(monkeypatch):
    calls = []

    def fake_run(command, cwd):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1 if len(calls) == 2 else 0)

    monkeypatch.setattr(sweep.subprocess, "run", fake_run)
    args = ["--sweep", "configs/sweeps/t2i_lr.py", "--root", "w"]
    assert sweep.main(args) == 1 and len(calls) == 2
    calls.clear()
    assert sweep.main(args + ["--keep-going"]) == 1 and len(calls) == len(t2i_lr.get_sweep())


def test_sweep_refuses_unknown_keys_and_repeated_points(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('BASE_CONFIG = "configs/t2i_shapes.py"\n'
                   'def get_sweep():\n    return [{"optim.learnig_rate": 1e-3}]\n')
    with pytest.raises(KeyError, match="learnig_rate"):
        sweep.expand(str(bad), "w")
    repeated = tmp_path / "repeated.py"
    repeated.write_text('BASE_CONFIG = "configs/t2i_shapes.py"\n'
                        'def get_sweep():\n    return [{"seed": 1}, {"seed": 1}]\n')
    with pytest.raises(ValueError, match="share the run name"):
        sweep.expand(str(repeated), "w")


def test_run_names():
    assert sweep.run_name({"optim.learning_rate": 3e-4, "data.batch_size": 64}) == \
        "learning_rate=0.0003,batch_size=64"
    assert sweep.run_name({"model.unet.channel_mult": (1, 2)}) == "channel_mult=1-2"
    assert sweep.flag_value((1, 2)) == "(1,2)"


# (d) the paper-scale config.

@pytest.fixture
def fast_tracing(monkeypatch):
    """nnx.eval_shape of a model with ~1,300 weights is slow in flax 0.12.8 (~35 s on 2 cores):
    every rng draw probes `.sharding` of a tracer, whose AttributeError message walks the whole
    trace. The message is never shown, so the test skips building it."""
    from jax._src.interpreters import partial_eval
    if hasattr(partial_eval.DynamicJaxprTracer, "_origin_msg"):
        monkeypatch.setattr(partial_eval.DynamicJaxprTracer, "_origin_msg", lambda self: "")


def test_paper_config_size_matches_its_docstring(fast_tracing):
    config = stunet_paper.get_config()
    assert (config.data.num_frames, config.data.resolution) == (80, 128)
    assert config.model.unet.resolution == 128 and config.model.backbone == ""
    model = nnx.eval_shape(lambda: build_model(parse_model_config(config.model)))
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    stated = int(re.search(r"Parameters: ([\d,]+) in all", stunet_paper.__doc__)[1].replace(",", ""))
    assert abs(count - stated) <= 0.01 * stated, (count, stated)
    model.check_frame_count(config.data.num_frames)


def test_ssr_paper_config_lifts_128_to_1024_and_matches_its_docstring(fast_tracing):
    config = ssr_paper.get_config()
    assert config.model.kind == "ssr"
    assert (config.model.ssr.low_resolution, config.model.unet.resolution) == (128, 1024)
    model = nnx.eval_shape(lambda: build_model(parse_model_config(config.model)))
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    stated = int(re.search(r"Parameters: ([\d,]+) in all", ssr_paper.__doc__)[1].replace(",", ""))
    assert abs(count - stated) <= 0.01 * stated, (count, stated)
    assert model.spatial.unet.conv_in.kernel.shape[-2] == 6  # noisy + upsampled low-res clip
    model.check_frame_count(config.data.num_frames)
