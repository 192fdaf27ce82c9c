"""Evaluation during training: sample the running EMA weights on a few validation prompts and
score them with the shapes evaluator, so a run's learning curve is measured as it goes."""
from __future__ import annotations

import time

from flax import nnx

from lumiere_jax.diffusion.model_sampling import ModelSampler
from lumiere_jax.eval.shapes_evaluator import score_clips, score_frames
from lumiere_jax.eval.split_sampling import evaluate_on_split


def evaluate_weights(graphdef, ema_params, frozen, run, *, num: int, steps: int,
                     batch: int) -> dict[str, float]:
    """`eval_<attribute>` accuracies of the EMA model on the first `num` validation prompts,
    DDIM with `steps` steps and the config's guidance, plus `eval_seconds`."""
    start = time.perf_counter()
    model = nnx.merge(graphdef, ema_params, frozen)
    graphdef_all, state = nnx.split(model)
    sampler = ModelSampler(graphdef_all, state, model, run.diffusion, run.sample,
                           run.data.num_frames)
    score = score_clips if model.is_video else score_frames
    scores = evaluate_on_split(sampler, score, num=num, batch=min(batch, num), split="validation",
                               seed=0, steps=steps)
    result = {f"eval_{name}": value for name, value in scores.items()
              if name not in ("split", "num") and not name.startswith("mean_")}
    result["eval_seconds"] = time.perf_counter() - start
    return result
