"""Preparing a TFDS builder once, atomically: a failed build leaves no dataset behind."""
from __future__ import annotations

import os
from typing import Callable

import tensorflow_datasets as tfds


class DatasetBuildError(RuntimeError):
    """Building a dataset failed (or found nothing to build from); no dataset was kept."""


def prepare_builder(make_builder: Callable[[], tfds.core.DatasetBuilder], data_dir: str,
                    what: str, after_failure: str = "Nothing was kept; the next call starts over."):
    """Builds the dataset of `make_builder()` unless it is already there; returns its builder.

    TFDS writes into a temporary folder and renames it when complete, so a failed build leaves
    nothing that a later call could mistake for a finished dataset. `what` names the dataset
    and `after_failure` says what a failed build kept, in the DatasetBuildError.
    """
    builder = make_builder()
    if builder.is_prepared():
        return builder
    try:
        builder.download_and_prepare(
                download_dir=os.path.join(data_dir, "downloads"),
                download_config=tfds.download.DownloadConfig(
                        compute_stats=tfds.download.ComputeStatsMode.SKIP),
        )
    except Exception as error:
        builder = make_builder()
        if builder.is_prepared():  # another process finished the same build first
            return builder
        raise DatasetBuildError(f"Building {what} under {data_dir!r} failed "
                                f"({type(error).__name__}: {error}). {after_failure}") from error
    return builder
