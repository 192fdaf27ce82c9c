"""Evaluation during training: sample the running EMA weights on a few validation prompts and
score them with the shapes evaluator, so a run's learning curve is measured as it goes."""
from __future__ import annotations

import time

from flax import nnx

from lumiere_jax.diffusion.model_sampling import ModelSampler
from lumiere_jax.eval.applications_eval import evaluate_application
from lumiere_jax.eval.shapes_evaluator import score_clips, score_frames
from lumiere_jax.eval.split_sampling import evaluate_on_split
from lumiere_jax.eval.ssr_eval import evaluate_sr_fidelity
from lumiere_jax.models.conditional import KNOWN_VIDEO


def evaluate_weights(graphdef, ema_params, frozen, run, *, num: int, steps: int,
                     batch: int) -> dict[str, float]:
    """`eval_<attribute>` accuracies of the EMA model on the first `num` validation prompts,
    DDIM with `steps` steps and the config's guidance, plus `eval_seconds`. A super-resolution
    model lifts those captions' ground truth shrunk to its input size, and also logs
    `eval_psnr` (and `eval_psnr_bilinear`, the floor). A conditional STUNet is scored on
    image-to-video (frame 0 given) and also logs `eval_first_frame_psnr`."""
    start = time.perf_counter()
    model = nnx.merge(graphdef, ema_params, frozen)
    graphdef_all, state = nnx.split(model)
    sampler = ModelSampler(graphdef_all, state, model, run.diffusion, run.sample,
                           run.data.num_frames)
    frames = run.data.num_frames if model.is_video else None
    shapes = model.conditioning_shapes(1, frames)
    low_res = shapes.get("low_res")
    if KNOWN_VIDEO in shapes:
        scores = evaluate_application(sampler, "image_to_video", num=num, batch=min(batch, num),
                                      steps=steps)
    elif low_res is not None:
        scores = evaluate_sr_fidelity(sampler, low_res[-2], num=num, batch=min(batch, num),
                                      steps=steps, frames=frames)
    else:
        score = score_clips if model.is_video else score_frames
        scores = evaluate_on_split(sampler, score, num=num, batch=min(batch, num),
                                   split="validation", seed=0, steps=steps)
    result = {f"eval_{name}": value for name, value in scores.items()
              if name not in ("split", "num", "application") and not name.startswith("mean_")}
    result["eval_seconds"] = time.perf_counter() - start
    return result
