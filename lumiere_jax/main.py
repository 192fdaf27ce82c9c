"""Training entry point: `python -m lumiere_jax.main --config configs/t2i_shapes.py --workdir DIR`.

The text stage (`configs/t5_shapes.py`, model kind "t5") runs its own loop (`train.text_loop`);
image and video models run `train.loop`.

Multi-host: start the same command on every host with `--distributed` (the cluster is detected);
by hand, e.g. two CPU processes on one machine, add `--coordinator_address=localhost:PORT
--num_processes=2 --process_id=0` (and 1 on the second).
"""
from absl import app, flags
from ml_collections import config_flags

from lumiere_jax.parallel.multihost import initialize
from lumiere_jax.settings import ConfigError, as_dict
from lumiere_jax.train.loop import train
from lumiere_jax.train.text_loop import train_text

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and exports go.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Join a multi-process run (jax.distributed.initialize) first.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 (with --distributed; default: detected).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "Processes in the run (with --distributed; default: detected).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "This process's index (with --distributed; default: detected).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    by_hand = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    if _DISTRIBUTED.value:
        initialize(*by_hand)
    elif any(value is not None for value in by_hand):
        raise app.UsageError("--coordinator_address/--num_processes/--process_id need --distributed.")
    text_stage = as_dict(_CONFIG.value.get("model", {})).get("kind") == "t5"
    try:
        export = (train_text if text_stage else train)(_CONFIG.value, _WORKDIR.value)
    except ConfigError as error:
        raise app.UsageError(str(error)) from None
    print(f"Exported EMA weights to {export}")


if __name__ == "__main__":
    app.run(main)
