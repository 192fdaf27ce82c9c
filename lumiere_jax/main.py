"""Training entry point: `python -m lumiere_jax.main --config configs/t2i_shapes.py --workdir DIR`."""
from absl import app, flags
from ml_collections import config_flags

from lumiere_jax.settings import ConfigError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and exports go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from lumiere_jax.train.loop import train

    try:
        export = train(_CONFIG.value, _WORKDIR.value)
    except ConfigError as error:
        raise app.UsageError(str(error)) from None
    print(f"Exported EMA weights to {export}")


if __name__ == "__main__":
    app.run(main)
