"""Side-by-side race of our STUNet against two PyTorch peers, in one process on one machine:
imagen-pytorch's `Unet3D` and lumiere-pytorch's `Lumiere` around a 2D `KarrasUnet`, matched to
one size (`benchmarks/peer_spec.py`: clip shape, widths, depth, attention placement).

    python benchmarks/peer_race.py --size tiny|small [--rounds 2] [--repeats 5] \
        [--jsonl F] [--models ours,ours-all,imagen,lumiere,lumiere-all]

Run it from the side venv that `benchmarks/peer_venv.sh` makes (torch and the peers beside this
project). Contestants: `ours` (temporal weights train, as the STUNet trains), `ours-all` (every
weight but the text encoder), `imagen` (every weight), `lumiere` (temporal weights, as the
library trains) and `lumiere-all`. Each times a forward call (one per architecture) and a train
step (forward, loss, backward, Adam). Every round visits every contestant in turn (the order
reversed each round); per contestant and call, one warm-up call then the median of `--repeats`
timed calls; the figure is the best of `--rounds` round medians. torch runs `--torch-threads`
threads, XLA its default pool. The ratio of a peer is our throughput over its own (> 1: ours is
faster): forward against `ours`, train step against the ours contestant that trains the same
weights. A markdown table goes to stdout, one JSON line per contestant to `--jsonl`.
`--batch` / `--frames` shrink the clips for a quick check (the widths stay the size's).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the peers run on the CPU: so does ours

from benchmarks import measure  # noqa: E402
from benchmarks.peer_spec import ALL, SIZES, TEMPORAL, Contestant, RaceSize  # noqa: E402

# Contestant -> (architecture, weights its train step updates).
MODELS = {"ours": ("ours", TEMPORAL), "ours-all": ("ours", ALL),
          "imagen": ("imagen", ALL),
          "lumiere": ("lumiere", TEMPORAL), "lumiere-all": ("lumiere", ALL)}
TASKS = ("forward", "train")
# Above this 1-minute load average before the race, other work shares the cores: torch's
# OpenMP threads then stall at every barrier (many times slower), so the race is not fair.
BUSY_LOAD = 0.5


def parse_models(text: str) -> list[str]:
    """'ours,imagen' -> ['ours', 'imagen'], refused unless every name is a contestant."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown contestant(s) {unknown or text!r}; choose from {', '.join(MODELS)}")
    return list(dict.fromkeys(names))


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", required=True, choices=sorted(SIZES))
    parser.add_argument("--rounds", type=positive, default=2)
    parser.add_argument("--repeats", type=positive, default=5)
    parser.add_argument("--jsonl", help="append one JSON line per contestant to this file")
    parser.add_argument("--models", type=parse_models, default=list(MODELS),
                        help=f"comma-separated, from {','.join(MODELS)} (default: all)")
    parser.add_argument("--torch-threads", type=positive, default=2)
    parser.add_argument("--batch", type=positive, help="clips per step (default: the size's)")
    parser.add_argument("--frames", type=positive, help="frames per clip (default: the size's)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def build(name: str, size: RaceSize, seed: int, forward: bool) -> Contestant:
    """The contestant `name` at `size` (its forward timed only where `forward`)."""
    architecture, trains = MODELS[name]
    if architecture == "ours":
        from benchmarks.peer_ours import ours_contestant
        return ours_contestant(size, trains, seed, forward=forward)
    try:
        from benchmarks import peer_models
    except ImportError as error:
        raise SystemExit(f"{name}: {error}. Run the race from the venv of "
                         f"benchmarks/peer_venv.sh.") from None
    if architecture == "imagen":
        return peer_models.imagen_contestant(size, seed)
    return peer_models.lumiere_contestant(size, trains, seed, forward=forward)


def build_all(names: list[str], size: RaceSize, seed: int) -> tuple[list[Contestant], dict]:
    """The contestants (the first of each architecture times the forward) and their build
    times (construction, and for ours the setup and ahead-of-time compile)."""
    contestants, build_s, with_forward = [], {}, set()
    for name in names:
        architecture = MODELS[name][0]
        start = time.perf_counter()
        contestants.append(build(name, size, seed, forward=architecture not in with_forward))
        build_s[name] = time.perf_counter() - start
        with_forward.add(architecture)
        print(f"built {name} in {build_s[name]:.1f} s", file=sys.stderr, flush=True)
    return contestants, build_s


def race(contestants: list[Contestant], rounds: int, repeats: int) -> dict:
    """{(name, task): [round medians]}: every round, each contestant in turn (reversed order on
    odd rounds), one warm-up then `repeats` timed calls of each of its calls."""
    medians = {}
    for round_index in range(rounds):
        order = contestants if round_index % 2 == 0 else contestants[::-1]
        for contestant in order:
            for task, call in zip(TASKS, (contestant.forward, contestant.train_step)):
                if call is None:
                    continue
                timing = measure.time_rounds(call, steps=repeats, rounds=1, warmup=1)
                medians.setdefault((contestant.name, task), []).append(timing["median_s"])
                print(f"round {round_index + 1}: {contestant.name} {task} "
                      f"{timing['median_s']:.3f} s", file=sys.stderr, flush=True)
    return medians


def ratio(ours_s: float | None, theirs_s: float | None) -> float | None:
    """Our throughput over theirs: their time over ours."""
    return None if ours_s is None or theirs_s is None else theirs_s / ours_s


def records(contestants, medians, build_s, size: RaceSize, args, load: float) -> list[dict]:
    """One record per contestant: parameter counts, best times, throughputs and ratios."""
    best = {key: min(values) for key, values in medians.items()}
    ours_forward = next((best.get((c.name, "forward")) for c in contestants
                         if MODELS[c.name][0] == "ours" and c.forward), None)
    ours_train = {MODELS[c.name][1]: best.get((c.name, "train")) for c in contestants
                  if MODELS[c.name][0] == "ours"}
    environment = dict(measure.environment(), **torch_environment(), load_average_before=load)
    rows = []
    for c in contestants:
        forward_s, train_s = best.get((c.name, "forward")), best.get((c.name, "train"))
        is_peer = MODELS[c.name][0] != "ours"
        rows.append({
            "benchmark": "peer_race", "size": size.name, "batch": size.batch,
            "frames": size.frames, "resolution": size.resolution, "widths": list(size.widths),
            "num_res_blocks": size.num_res_blocks, "model": c.name, "framework": c.framework,
            "trains": c.trains, "params": c.params, "trainable_params": c.trainable,
            "notes": c.notes, "build_s": build_s[c.name], "compile_s": c.compile_s,
            "rounds": args.rounds, "repeats": args.repeats,
            "forward_s": forward_s, "forward_round_medians_s": medians.get((c.name, "forward")),
            "train_s": train_s, "train_round_medians_s": medians.get((c.name, "train")),
            "forward_clips_per_s": size.batch / forward_s if forward_s else None,
            "train_clips_per_s": size.batch / train_s if train_s else None,
            "ours_over_this_forward": ratio(ours_forward, forward_s) if is_peer else None,
            "ours_over_this_train": ratio(ours_train.get(c.trains), train_s) if is_peer else None,
            **environment})
    return rows


def warn_if_busy() -> float:
    """The 1-minute load average, with a warning on stderr where the CPU is already busy."""
    load = os.getloadavg()[0]
    if load > BUSY_LOAD:
        print(f"warning: load average {load:.2f} before the race: the cores are shared, and "
              f"torch's threads stall on a shared core; these figures are not comparable.",
              file=sys.stderr, flush=True)
    return load


def torch_environment() -> dict:
    """torch's version and threads, where torch was loaded."""
    torch = sys.modules.get("torch")
    return {} if torch is None else {"torch": torch.__version__,
                                     "torch_threads": torch.get_num_threads()}


def markdown(rows: list[dict], size: RaceSize, args) -> str:
    """The race as a markdown table."""
    cell = lambda value, fmt: "–" if value is None else format(value, fmt)
    lines = [f"Peer race, size {size.name}: {size.batch} clips x {size.frames} frames x "
             f"{size.resolution} px, widths {size.base_channels} x {size.channel_mult}, "
             f"{size.num_res_blocks} res blocks a level; best of {args.rounds} round medians of "
             f"{args.repeats} calls.", "",
             "| model | framework | trains | params (M) | trainable (M) | forward (s) | "
             "train step (s) | train clips/s | ours ÷ this, forward | ours ÷ this, train |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['framework']} | {row['trains']} | "
            f"{row['params'] / 1e6:.2f} | {row['trainable_params'] / 1e6:.2f} | "
            f"{cell(row['forward_s'], '.3f')} | {cell(row['train_s'], '.3f')} | "
            f"{cell(row['train_clips_per_s'], '.2f')} | "
            f"{cell(row['ours_over_this_forward'], '.2f')} | "
            f"{cell(row['ours_over_this_train'], '.2f')} |")
    lines += ["", "ours ÷ this: our throughput over this model's (> 1: ours is faster); train "
              "steps compared with the ours row that trains the same weights."]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        size = SIZES[args.size].with_clips(args.batch, args.frames)
    except ValueError as error:
        raise SystemExit(f"peer_race.py: {error}") from None
    load = warn_if_busy()
    if any(MODELS[name][0] != "ours" for name in args.models):
        try:
            import torch
        except ImportError:
            raise SystemExit("The peers need torch: run the race from the venv of "
                             "benchmarks/peer_venv.sh.") from None
        torch.set_num_threads(args.torch_threads)
    contestants, build_s = build_all(args.models, size, args.seed)
    medians = race(contestants, args.rounds, args.repeats)
    rows = records(contestants, medians, build_s, size, args, load)
    print(markdown(rows, size, args), flush=True)
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            for row in rows:
                f.write(json.dumps(row, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
