"""Exports the T2I model inside a video model's export (its frozen spatial weights) on its own:

    python -m launch.export_spatial --video lumiere_jax/weights/stunet_shapes --out DIR

DIR is then a T2I export (e.g. the base of `configs/t2i_style_shapes.py:base=DIR`).
"""
from __future__ import annotations

import argparse

from lumiere_jax.checkpoints.exported import export_spatial


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", required=True, help="Exported STUNet (or conditional STUNet).")
    parser.add_argument("--out", required=True, help="Where to write the T2I export.")
    args = parser.parse_args(argv)
    export_spatial(args.video, args.out)
    print(f"Wrote the spatial T2I of {args.video} to {args.out}.")


if __name__ == "__main__":
    main()
