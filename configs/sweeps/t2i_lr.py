"""Learning rate x batch size for the shapes T2I model (6 runs).

    python -m launch.sweep --sweep configs/sweeps/t2i_lr.py --dry-run
"""
BASE_CONFIG = "configs/t2i_shapes.py"

LEARNING_RATES = (3e-4, 7e-4, 1.5e-3)
BATCH_SIZES = (32, 64)


def get_sweep():
    return [{"optim.learning_rate": lr, "data.batch_size": batch}
            for lr in LEARNING_RATES for batch in BATCH_SIZES]
