"""Shapes TFDS build, grain pipelines (sharding, shuffling, checkpointing) and video file I/O."""
import os

import imageio.v3 as iio
import numpy as np
import orbax.checkpoint as ocp
import pytest

from lumiere_jax.data import pipeline, shapes, tfds_shapes, video_io
from lumiere_jax.text import tokenizer

RESOLUTION, NUM_FRAMES = 16, 4
SPLIT_SIZES = {"train": 24, "validation": 8, "heldout": 8}
TEXT_LENGTH = shapes.MAX_CAPTION_LENGTH + 1  # no caption is truncated


def _prepare(data_dir):
    return tfds_shapes.prepare_shapes_dataset(data_dir, RESOLUTION, NUM_FRAMES, *SPLIT_SIZES.values())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("shapes_data")


@pytest.fixture(scope="module")
def builder(data_dir):
    return _prepare(data_dir)


@pytest.fixture(scope="module")
def records(builder):
    """All stored records, per split, in record order."""
    return {split: [pipeline.make_data_source(builder, split)[i] for i in range(count)]
            for split, count in SPLIT_SIZES.items()}


def _iterator(builder, split="train", **overrides):
    arguments = dict(mode="frames", batch_size=4, seed=7, process_index=0, process_count=1,
                     text_length=TEXT_LENGTH)
    arguments.update(overrides)
    return pipeline.make_iterator(pipeline.make_data_source(builder, split), **arguments)


def _take(iterator, count):
    return [next(iterator) for _ in range(count)]


def _assert_same_batches(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


# ----------------------------------------------------------------------------- TFDS build


def test_config_names_encode_every_size():
    sizes = [(32, 16, 100, 10, 10), (32, 16, 100, 10, 11), (64, 16, 100, 10, 10), (32, 8, 100, 10, 10)]
    names = {tfds_shapes.make_builder_config(*size).name for size in sizes}
    assert len(names) == 4
    assert tfds_shapes.make_builder_config(32, 16, 20000, 1000, 1000).name == "r32_f16_n20000_1000_1000"
    with pytest.raises(ValueError, match="num_train"):
        tfds_shapes.make_builder_config(32, 16, 0, 10, 10)


def test_records_equal_a_direct_render_of_their_seed(records):
    for split, split_records in records.items():
        for index, record in enumerate(split_records):
            seed = int(record["seed"])
            assert seed == tfds_shapes.example_seed(split, index)
            spec = shapes.spec_for_seed(seed, split)
            expected = shapes.render_clip(spec, resolution=RESOLUTION, num_frames=NUM_FRAMES)
            assert record["frames"].dtype == np.uint8
            np.testing.assert_array_equal(record["frames"], expected)
            assert record["canonical_caption"].decode() == shapes.canonical_caption(spec)
            caption = record["caption"].decode()
            assert caption == tfds_shapes.render_example(seed, split, RESOLUTION, NUM_FRAMES)["caption"]
            mentioned = shapes.parse_caption(caption)
            assert {name: mentioned.get(name) for name in ("shape", "colour", "motion")} == \
                {name: getattr(spec, name) for name in ("shape", "colour", "motion")}
            for name in tfds_shapes.ATTRIBUTE_FEATURES:
                assert record[name].decode() == (getattr(spec, name) or "")


def test_splits_are_disjoint_and_heldout_pairs_stay_out_of_training(records):
    seeds = {split: {int(r["seed"]) for r in split_records} for split, split_records in records.items()}
    assert seeds["train"].isdisjoint(seeds["validation"])
    assert seeds["train"].isdisjoint(seeds["heldout"])
    assert seeds["validation"].isdisjoint(seeds["heldout"])
    for split, split_records in records.items():
        pairs = {(r["shape"].decode(), r["colour"].decode()) for r in split_records}
        if split == "heldout":
            assert pairs <= shapes.HELDOUT_PAIRS
        else:
            assert pairs.isdisjoint(shapes.HELDOUT_PAIRS)


def test_second_prepare_reuses_the_dataset(builder, data_dir, monkeypatch):
    files = [os.path.join(root, name) for root, _, names in os.walk(builder.data_dir) for name in names]
    modified = {path: os.stat(path).st_mtime_ns for path in files}

    def refuse_to_render(*args, **kwargs):
        raise AssertionError("prepare_shapes_dataset rendered again")

    monkeypatch.setattr(shapes, "render_clip", refuse_to_render)
    again = _prepare(data_dir)
    assert again.data_dir == builder.data_dir
    assert {path: os.stat(path).st_mtime_ns for path in files} == modified


def test_failed_build_leaves_nothing_and_next_call_builds(tmp_path, monkeypatch):
    render_clip = shapes.render_clip
    calls = []

    def fail_half_way(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise OSError("disk on fire")
        return render_clip(*args, **kwargs)

    monkeypatch.setattr(shapes, "render_clip", fail_half_way)
    with pytest.raises(tfds_shapes.DatasetBuildError, match="disk on fire"):
        tfds_shapes.prepare_shapes_dataset(tmp_path, 8, 2, 6, 2, 2)
    dataset_folder = tmp_path / "shapes_videos" / "r8_f2_n6_2_2"
    assert not dataset_folder.exists() or not any(dataset_folder.iterdir())

    monkeypatch.setattr(shapes, "render_clip", render_clip)
    builder = tfds_shapes.prepare_shapes_dataset(tmp_path, 8, 2, 6, 2, 2)
    assert len(pipeline.make_data_source(builder, "train")) == 6


# ----------------------------------------------------------------------------- grain pipeline


def test_frames_mode_yields_one_chosen_frame_per_clip(builder, records):
    batch = next(_iterator(builder, mode="frames", batch_size=5))
    assert batch["frames"].shape == (5, RESOLUTION, RESOLUTION, 3) and batch["frames"].dtype == np.uint8
    assert batch["tokens"].shape == (5, TEXT_LENGTH) and batch["tokens"].dtype == np.int32
    for frame, tokens, index in zip(batch["frames"], batch["tokens"], batch["index"]):
        record = records["train"][index]
        chosen = pipeline.pick_frame(7, int(index), 0, NUM_FRAMES)
        np.testing.assert_array_equal(frame, record["frames"][chosen])
        assert tokenizer.detokenize(tokens) == record["caption"].decode()


def test_frames_mode_picks_new_frames_in_later_epochs(builder):
    batches = _take(_iterator(builder, mode="frames", batch_size=24, shuffle=False), 4)
    epochs = np.stack([b["frames"] for b in batches])          # (epoch, record, H, W, 3)
    assert all((b["index"] == np.arange(24)).all() for b in batches)
    assert any(not np.array_equal(epochs[0], epochs[e]) for e in range(1, 4))


def test_clips_mode_yields_whole_clips(builder, records):
    batch = next(_iterator(builder, "validation", mode="clips", batch_size=3))
    assert batch["frames"].shape == (3, NUM_FRAMES, RESOLUTION, RESOLUTION, 3)
    for clip, index in zip(batch["frames"], batch["index"]):
        np.testing.assert_array_equal(clip, records["validation"][index]["frames"])


def test_shuffle_is_seeded(builder):
    order = lambda seed: np.concatenate([b["index"] for b in _take(_iterator(builder, seed=seed), 12)])
    np.testing.assert_array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))
    first_epoch, second_epoch = order(1)[:24], order(1)[24:]
    assert sorted(first_epoch) == sorted(second_epoch) == list(range(24))
    assert not np.array_equal(first_epoch, second_epoch)  # reshuffled every epoch


def test_processes_read_disjoint_shards_that_cover_the_split(builder):
    seen = []
    for process_index in range(2):
        iterator = _iterator(builder, repeat=False, process_index=process_index, process_count=2)
        seen.append(np.concatenate([b["index"] for b in iterator]))
    assert len(seen[0]) == len(seen[1]) == 12
    assert set(seen[0]).isdisjoint(seen[1])
    assert sorted(np.concatenate(seen)) == list(range(24))


def test_state_round_trip_continues_identically(builder):
    iterator = _iterator(builder, mode="clips")
    _take(iterator, 5)  # 5 of the 6 batches of the first epoch
    state = iterator.get_state()
    expected = _take(iterator, 4)  # crosses into the second epoch
    fresh = _iterator(builder, mode="clips")
    fresh.set_state(state)
    _assert_same_batches(_take(fresh, 4), expected)


def test_orbax_checkpoint_manager_restores_the_iterator(builder, tmp_path):
    def checkpoint_manager():
        return ocp.CheckpointManager(tmp_path / "checkpoints", item_names=("state", "data"),
                                     options=ocp.CheckpointManagerOptions(max_to_keep=2))

    iterator = _iterator(builder)
    _take(iterator, 3)
    with checkpoint_manager() as manager:
        manager.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave({"step": np.array(3)}),
                                                data=pipeline.iterator_save_args(iterator)))
        expected = _take(iterator, 4)  # advancing right away must not change what was saved
        manager.wait_until_finished()

    restored_iterator = _iterator(builder)
    with checkpoint_manager() as manager:
        restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
                state=ocp.args.StandardRestore({"step": np.array(0)}),
                data=pipeline.iterator_restore_args(restored_iterator)))
    assert int(restored["state"]["step"]) == 3
    _assert_same_batches(_take(restored_iterator, 4), expected)


def test_worker_processes_give_the_same_batches(builder):
    expected = _take(_iterator(builder), 3)
    iterator = _iterator(builder, worker_count=1)
    try:
        _assert_same_batches(_take(iterator, 3), expected)
    finally:
        iterator.close()


def test_long_captions_are_truncated_with_one_warning(builder):
    with pytest.warns(UserWarning, match="truncated") as caught:
        batch = next(_iterator(builder, batch_size=8, text_length=4, read_threads=0))
    assert len([w for w in caught if "truncated" in str(w.message)]) == 1
    # every caption names at least colour, shape and motion (>= 3 tokens): all end in EOS
    assert (batch["tokens"][:, -1] == tokenizer.EOS_ID).all()


@pytest.mark.parametrize("overrides, message", [
        (dict(mode="video"), "allowed: frames, clips"),
        (dict(batch_size=0), r"\[1, 24\]"),
        (dict(batch_size=13, process_index=1, process_count=2), r"\[1, 12\]"),
        (dict(process_index=2, process_count=2), "process_index"),
        (dict(seed=-1), "seed"),
])
def test_bad_iterator_arguments_raise(builder, overrides, message):
    with pytest.raises(ValueError, match=message):
        _iterator(builder, **overrides)


def test_keep_records_yields_only_the_chosen_motions(builder, records):
    motions = [_as_text(r["motion"]) for r in records["train"]]
    chosen = sorted(set(motions))[:2]
    source = pipeline.keep_records(pipeline.make_data_source(builder, "train"), "motion", chosen)
    expected = [i for i, motion in enumerate(motions) if motion in chosen]
    assert 0 < len(source) == len(expected) < len(motions)
    for position, index in enumerate(expected):
        np.testing.assert_array_equal(source[position]["frames"], records["train"][index]["frames"])
    batch = next(pipeline.make_iterator(source, mode="clips", batch_size=len(source), seed=0,
                                        process_index=0, process_count=1, text_length=TEXT_LENGTH,
                                        repeat=False))
    assert sorted(batch["index"]) == list(range(len(source)))


def test_keep_records_refuses_a_motion_no_record_has(builder):
    with pytest.raises(ValueError, match=r"No record has motion \['sideways'\]; the records have"):
        pipeline.keep_records(pipeline.make_data_source(builder, "train"), "motion", ["sideways"])


def _as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_unknown_split_lists_the_splits(builder):
    with pytest.raises(ValueError, match="allowed: .*heldout"):
        pipeline.make_data_source(builder, "test")


# ----------------------------------------------------------------------------- video I/O


def _moving_square_clip(num_frames=8, size=32):
    clip = np.zeros((num_frames, size, size, 3), np.uint8)
    clip[..., 2] = 40
    for t in range(num_frames):
        clip[t, 8:20, 2 + 2 * t:14 + 2 * t] = (255, 200, 0)
    return clip


def test_png_round_trip_is_exact(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    video_io.write_image(tmp_path / "image.png", image)
    np.testing.assert_array_equal(video_io.read_image(tmp_path / "image.png"), image)


def test_written_files_get_the_permissions_open_would_give(tmp_path):
    """Writes go through a private temporary file; the result must not stay private (0600)."""
    umask = os.umask(0o022)
    try:
        video_io.write_image(tmp_path / "image.png", np.zeros((4, 4, 3), np.uint8))
        video_io.write_video(tmp_path / "clip.gif", np.zeros((2, 4, 4, 3), np.uint8))
    finally:
        os.umask(umask)
    for name in ("image.png", "clip.gif"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


def test_read_image_drops_alpha_and_expands_grey(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    grey = rgba[..., 0]
    iio.imwrite(tmp_path / "rgba.png", rgba)
    iio.imwrite(tmp_path / "grey.png", grey)
    np.testing.assert_array_equal(video_io.read_image(tmp_path / "rgba.png"), rgba[..., :3])
    np.testing.assert_array_equal(video_io.read_image(tmp_path / "grey.png"), np.stack([grey] * 3, axis=-1))


def test_gif_round_trip_keeps_frames_and_colours(tmp_path):
    clip = _moving_square_clip()
    still = np.repeat(clip[:1], 6, axis=0)  # identical frames are merged inside the gif
    for name, frames in [("moving.gif", clip), ("still.gif", still)]:
        video_io.write_video(tmp_path / name, frames, fps=16)
        read = video_io.read_video(tmp_path / name)
        assert read.shape == frames.shape
        assert np.abs(read.astype(int) - frames).mean() < 2


# JAX warns on every fork; ffmpeg's fork is followed at once by exec, which is safe.
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_mp4_round_trip_is_close(tmp_path):
    clip = _moving_square_clip()
    video_io.write_video(tmp_path / "clip.mp4", clip, fps=16)
    read = video_io.read_video(tmp_path / "clip.mp4")
    assert read.shape == clip.shape and read.dtype == np.uint8
    assert np.abs(read.astype(int) - clip).mean() < 6
    video_io.write_video(tmp_path / "odd.mp4", clip[:, :15, :17])
    assert video_io.read_video(tmp_path / "odd.mp4").shape == (8, 30, 34, 3)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def write_then_fail(path, *args, **kwargs):
        with open(path, "wb") as partial:
            partial.write(b"GIF89a")
        raise OSError("interrupted")

    monkeypatch.setattr(video_io.iio, "imwrite", write_then_fail)
    with pytest.raises(OSError, match="interrupted"):
        video_io.write_video(tmp_path / "clip.gif", _moving_square_clip())
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("call, message", [
        (lambda d: video_io.write_video(d / "clip.avi", _moving_square_clip()),
         r"must end in \.mp4 or \.gif"),
        (lambda d: video_io.read_video(d / "clip.mov"), r"allowed: \.mp4, \.gif"),
        (lambda d: video_io.write_image(d / "image.tiff", np.zeros((4, 4, 3), np.uint8)), r"\.png"),
        (lambda d: video_io.write_video(d / "clip.mp4", np.zeros((4, 4, 3), np.uint8)), "T, H, W, C"),
        (lambda d: video_io.write_image(d / "image.png", np.zeros((4, 4, 2), np.uint8)), r"3 \(or 1\)"),
        (lambda d: video_io.write_image(d / "image.png", np.zeros((4, 4, 3), np.float32)), "uint8"),
        (lambda d: video_io.write_image(d / "image.png", np.full((4, 4, 3), 300)), r"\[0, 255\]"),
])
def test_bad_paths_and_arrays_raise_value_error(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path)
    assert os.listdir(tmp_path) == []


def test_missing_files_name_the_path(tmp_path):
    for read, name in [(video_io.read_video, "missing.mp4"), (video_io.read_image, "missing.png")]:
        with pytest.raises(FileNotFoundError, match="missing"):
            read(tmp_path / name)


def test_image_grid_places_tiles_row_by_row():
    images = np.stack([np.full((2, 3, 3), value, np.uint8) for value in (10, 20, 30)])
    grid = video_io.image_grid(images, columns=2, pad=1, pad_value=0)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 3)
    assert (grid[1:3, 1:4] == 10).all() and (grid[1:3, 5:8] == 20).all() and (grid[4:6, 1:4] == 30).all()
    assert (grid[4:6, 5:8] == 0).all() and (grid[0] == 0).all() and (grid[:, 4] == 0).all()
    clips = np.stack([_moving_square_clip(num_frames=3)] * 4)
    assert video_io.image_grid(clips).shape == (3, 2 * 33 + 1, 2 * 33 + 1, 3)


def test_upscale_nearest_repeats_pixels():
    frames = np.arange(2 * 2 * 2 * 1).reshape(2, 2, 2, 1)
    upscaled = video_io.upscale_nearest(frames, 3)
    assert upscaled.shape == (2, 6, 6, 1)
    np.testing.assert_array_equal(upscaled[:, ::3, ::3], frames)
    np.testing.assert_array_equal(upscaled[:, 2::3, 1::3], frames)
