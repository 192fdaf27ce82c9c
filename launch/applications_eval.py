"""Measures the applications on validation cases and writes a GIF of each (docs/applications.md):

    python -m launch.applications_eval --out docs/applications [--conditional DIR]
        [--video DIR --style DIR --alphas 0,0.5,0.75,1] [--num 32 --batch 16 --steps 25]

image-to-video, inpainting and cinemagraphs with the conditional STUNet (default: the shipped
one); stylized generation with the video model blended with a style T2I export at each alpha
(skipped without --style), and SDEdit of validation clips by the blended model. Scores go to `<out>/scores.json`, GIFs (first cases, model pixels
beside the truth or the given input) to `<out>/<application>.gif`.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from lumiere_jax.applications.edit import generate_conditioned, stylize_video
from lumiere_jax.data import video_io
from lumiere_jax.eval.applications_eval import (APPLICATIONS, application_conditions, cases,
                                                evaluate_application, evaluate_sdedit,
                                                evaluate_style)
from lumiere_jax.eval.split_sampling import prompts_and_specs
from lumiere_jax.pipeline import LumierePipeline


def write_gif(path: str, rows: list[np.ndarray], scale: int = 3) -> None:
    """Clips (N, T, H, W, 3) side by side as columns, N cases as rows, upscaled for viewing."""
    grid = np.concatenate([np.concatenate(list(clips), axis=1) for clips in zip(*rows)], axis=2)
    video_io.write_video(path, video_io.upscale_nearest(grid, scale), fps=8)


def application_gif(pipeline, application: str, path: str, cases_shown: int = 4, **settings):
    """Given input | model output | ground truth for the first cases."""
    captions, _, clips = cases("validation", cases_shown, pipeline.resolution,
                               pipeline.default_frames)
    conditions = application_conditions(application, clips)
    out = generate_conditioned(pipeline, captions, conditions, keep_known=False, **settings)
    write_gif(path, [conditions["known_video"], out, clips])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Folder for scores.json and the GIFs.")
    parser.add_argument("--conditional", default=None, help="Conditional STUNet (default: shipped).")
    parser.add_argument("--video", default=None, help="Text-to-video STUNet (default: shipped).")
    parser.add_argument("--style", default=None, help="Style T2I export; none skips the style runs.")
    parser.add_argument("--alphas", default="0,0.5,0.75,1")
    parser.add_argument("--applications", default=",".join(APPLICATIONS))
    parser.add_argument("--sdedit-strength", type=float, default=0.6)
    parser.add_argument("--sdedit-alpha", type=float, default=1.0)
    parser.add_argument("--sdedit-num", type=int, default=32, help="SDEdit cases (0: none).")
    parser.add_argument("--num", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "scores.json")
    scores = json.load(open(path)) if os.path.exists(path) else {}
    settings = dict(steps=args.steps)
    applications = [name for name in args.applications.split(",") if name]
    if applications:
        pipeline = LumierePipeline.from_checkpoint(args.conditional, default="conditional")
        for application in applications:
            start = time.perf_counter()
            scores[application] = evaluate_application(pipeline, application, num=args.num,
                                                       batch=args.batch, **settings)
            scores[application]["seconds"] = time.perf_counter() - start
            application_gif(pipeline, application, os.path.join(args.out, f"{application}.gif"),
                            **settings)
            print(application, json.dumps(scores[application]), flush=True)
            json.dump(scores, open(path, "w"), indent=2, sort_keys=True)
    if args.style:
        video = LumierePipeline.from_checkpoint(args.video, default="stunet")
        captions, _ = prompts_and_specs("validation", 4)
        rows = []
        for alpha in [float(a) for a in args.alphas.split(",")]:
            styled = video.with_style(args.style, alpha)
            start = time.perf_counter()
            result = evaluate_style(styled, num=args.num, batch=args.batch, **settings)
            scores[f"style_alpha_{alpha:g}"] = dict(result, alpha=alpha,
                                                    seconds=time.perf_counter() - start)
            rows.append(styled.sample(captions, **settings))
            print(alpha, json.dumps(scores[f"style_alpha_{alpha:g}"]), flush=True)
            json.dump(scores, open(path, "w"), indent=2, sort_keys=True)
        write_gif(os.path.join(args.out, "stylized.gif"), rows)
    if args.style and args.sdedit_num:
        video = LumierePipeline.from_checkpoint(args.video, default="stunet")
        captions, _ = prompts_and_specs("validation", 4)
        styled = video.with_style(args.style, args.sdedit_alpha)
        start = time.perf_counter()
        result = evaluate_sdedit(styled, args.sdedit_strength, num=args.sdedit_num, **settings)
        scores["sdedit"] = dict(result, alpha=args.sdedit_alpha,
                                seconds=time.perf_counter() - start)
        print("sdedit", json.dumps(scores["sdedit"]), flush=True)
        json.dump(scores, open(path, "w"), indent=2, sort_keys=True)
        _, _, clips = cases("validation", 4, video.resolution, video.default_frames)
        edited = np.stack([stylize_video(styled, clip, caption, args.sdedit_strength, **settings)
                           for clip, caption in zip(clips, captions)])
        write_gif(os.path.join(args.out, "sdedit.gif"), [clips, edited])


if __name__ == "__main__":
    main()
