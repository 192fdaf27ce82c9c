"""The video-folder dataset: real encoded videos (several containers, codecs, frame rates, sizes
and lengths, plus broken files) decoded, resampled and cut into clips. Training on it:
tests/test_trainer.py (it reuses that module's compiled step)."""
import dataclasses
import math
import shutil
import subprocess

import chex
import imageio_ffmpeg
import numpy as np
import pytest

from configs import t2i_shapes
from lumiere_jax import cli
from lumiere_jax.data import captions, pipeline, video_decode, video_folder, video_parts
from lumiere_jax.data.tfds_build import DatasetBuildError
from lumiere_jax.data.video_io import write_video
from lumiere_jax.settings import ConfigError, DataSettings
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import check_evaluation_fits_data

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
RESOLUTION, LENGTH, FPS, STRIDE = 16, 4, 8.0, 2  # the t2i tiny config's frames, 16 px


@dataclasses.dataclass(frozen=True)
class Source:
    """A video that ffmpeg encodes from one of its test sources."""
    path: str
    pattern: str
    size: str
    rate: int
    seconds: float
    codec: str

    @property
    def frames(self) -> int:
        return round(self.rate * self.seconds)


SOURCES = (
    Source("landscape.mp4", "testsrc", "32x24", 10, 2.0, "libx264"),
    Source("portrait.webm", "mandelbrot", "24x32", 24, 1.5, "libvpx"),
    Source("pattern.avi", "testsrc", "32x24", 30, 1.0, "mjpeg"),
    Source("nested/long.mkv", "testsrc", "32x24", 24, 3.0, "mpeg4"),
    Source("short.mp4", "testsrc", "32x24", 10, 0.3, "libx264"),  # too short for a clip
)
INDEX_VIDEO, INDEX_RATE, INDEX_FRAMES, INDEX_STEP = "index30.mp4", 30, 30, 8
BROKEN = {"truncated.mp4", "notes.mp4"}


def encode(folder, source: Source) -> None:
    (folder / source.path).parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"{source.pattern}=size={source.size}:rate={source.rate}",
                    "-t", str(source.seconds), "-c:v", source.codec, str(folder / source.path)],
                   check=True)


def write_index_video(path) -> None:
    """Grey frames whose brightness is INDEX_STEP x their index, losslessly coded at 30 fps."""
    writer = imageio_ffmpeg.write_frames(
            str(path), (32, 24), fps=INDEX_RATE, codec="libx264", quality=None,
            pix_fmt_out="yuv444p", macro_block_size=1, output_params=["-crf", "0"])
    writer.send(None)
    for index in range(INDEX_FRAMES):
        writer.send(np.full((24, 32, 3), INDEX_STEP * index, np.uint8))
    writer.close()


def frame_indices(frames) -> np.ndarray:
    """The source index each index-video frame shows, read back from its brightness."""
    return np.round(np.asarray(frames, np.float64).mean(axis=(-3, -2, -1)) / INDEX_STEP).astype(int)


def output_frames(source_frames: int, source_rate: float, fps: float) -> int:
    """Output frames j whose nearest source frame (round(j * rate / fps)) exists."""
    return math.ceil((source_frames - 0.5) * fps / source_rate)


def expected_clips(source_frames: int, source_rate: float) -> int:
    count = output_frames(source_frames, source_rate, FPS)
    return 0 if count < LENGTH else (count - LENGTH) // STRIDE + 1


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """The video folder and its generic CSV caption table (every kind of bad row included)."""
    folder = tmp_path_factory.mktemp("videos")
    for source in SOURCES:
        encode(folder, source)
    write_index_video(folder / INDEX_VIDEO)
    whole = (folder / "landscape.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(whole[:len(whole) // 2])
    (folder / "notes.mp4").write_text("not a video")
    shutil.copy(folder / "landscape.mp4", folder / "uncaptioned.mp4")
    rows = [(s.path, f"caption of {s.path}") for s in SOURCES] + [
            (INDEX_VIDEO, "grey frames"), ("truncated.mp4", "cut in half"),
            ("notes.mp4", "text"), ("missing.mp4", "not there"), ("landscape.mp4", "again")]
    table = folder / "captions.csv"
    table.write_text("path,caption\n" + "".join(f'{p},"{c}"\n' for p, c in rows))
    return folder, table


def build(data_dir, videos, **kwargs):
    folder, table = videos
    settings = dict(resolution=RESOLUTION, num_frames=LENGTH, fps=FPS, clip_stride=STRIDE,
                    progress=False)
    return video_folder.prepare_video_folder_dataset(data_dir, folder, table,
                                                     **dict(settings, **kwargs))


def records(builder, split="train") -> list[dict]:
    source = pipeline.make_data_source(builder, split)
    return [source[i] for i in range(len(source))]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="module")
def reference(videos, data_dir):
    """The dataset built in one go, and its records."""
    builder = build(data_dir, videos)
    return builder, records(builder)


def test_clip_counts_shapes_and_metadata_follow_the_sources(reference):
    builder, found = reference
    usable = [s for s in SOURCES if expected_clips(s.frames, s.rate)]
    expected = {s.path: expected_clips(s.frames, s.rate) for s in usable}
    expected[INDEX_VIDEO] = expected_clips(INDEX_FRAMES, INDEX_RATE)
    counts = {}
    for record in found:
        path = record["source_path"].decode()
        counts[path] = counts.get(path, 0) + 1
        chex.assert_shape(record["frames"], (LENGTH, RESOLUTION, RESOLUTION, 3))
        assert record["frames"].dtype == np.uint8
    assert counts == expected
    by_path = {s.path: s for s in SOURCES}
    for record in found:
        path = record["source_path"].decode()
        rate = by_path[path].rate if path in by_path else INDEX_RATE
        clip = int(record["clip_index"])
        assert record["caption"].decode() == ("grey frames" if path == INDEX_VIDEO
                                              else f"caption of {path}")
        assert record["source_fps"] == pytest.approx(rate)
        first = video_decode.nearest_source_frame(clip * STRIDE, rate, FPS)
        assert record["start_frame"] == first
        assert record["start_time"] == pytest.approx(first / rate, rel=1e-6)
    # Record order: sorted paths, then clips.
    keys = [(r["source_path"].decode(), int(r["clip_index"])) for r in found]
    assert keys == sorted(keys)


def test_the_grain_pipeline_batches_its_clips_unchanged(reference):
    builder, found = reference
    source = pipeline.make_data_source(builder, "train")
    batch = next(pipeline.make_iterator(source, mode="clips", batch_size=4, seed=0,
                                        text_length=32, shuffle=False))
    chex.assert_shape(batch["frames"], (4, LENGTH, RESOLUTION, RESOLUTION, 3))
    chex.assert_shape(batch["tokens"], (4, 32))
    np.testing.assert_array_equal(batch["frames"], np.stack([r["frames"] for r in found[:4]]))


def test_resampling_keeps_the_nearest_source_frame(videos, reference):
    folder, _ = videos
    _, found = reference
    clips = [r for r in found if r["source_path"].decode() == INDEX_VIDEO]
    for record in clips:  # 30 -> 8 fps: source frame round(j * 3.75)
        start = int(record["clip_index"]) * STRIDE
        wanted = [math.floor((start + j) * INDEX_RATE / FPS + 0.5) for j in range(LENGTH)]
        np.testing.assert_array_equal(frame_indices(record["frames"]), wanted)
    thirds = video_decode.decode_video(folder / INDEX_VIDEO, fps=10, resolution=8)
    np.testing.assert_array_equal(thirds.source_frame, np.arange(0, INDEX_FRAMES, 3))
    np.testing.assert_array_equal(frame_indices(thirds.frames), np.arange(0, INDEX_FRAMES, 3))
    # Above the source rate frames repeat: 30 -> 45 fps shows round(j * 2 / 3).
    faster = video_decode.decode_video(folder / INDEX_VIDEO, fps=45, resolution=8)
    wanted = [math.floor(j * 2 / 3 + 0.5) for j in range(output_frames(INDEX_FRAMES, 30, 45))]
    np.testing.assert_array_equal(frame_indices(faster.frames), wanted)
    assert thirds.source_fps == INDEX_RATE and thirds.source_size == (32, 24)


def test_a_gif_with_held_frames_decodes_to_the_frames_on_display(tmp_path):
    """A GIF stores a run of equal frames as one frame shown longer (ffmpeg then emits it at
    100 fps, not at its 8 fps average): decoding at the clip's rate gives its frames back."""
    clip = np.zeros((16, 16, 16, 3), np.uint8)
    for j, shown in enumerate([0, 0, 0, 1, 2, 2, 3, 4, 5, 5, 5, 5, 6, 7, 8, 9]):
        clip[j, :, :shown + 1] = 255  # shown + 1 white columns
    write_video(tmp_path / "held.gif", clip, fps=8)
    assert video_decode.is_variable_rate(str(tmp_path / "held.gif"))
    decoded = video_decode.decode_video(tmp_path / "held.gif", fps=8, resolution=16)
    np.testing.assert_array_equal(decoded.frames, clip)
    # At half the rate each output frame is one of the clip's frames near time j / 4.
    halved = video_decode.decode_video(tmp_path / "held.gif", fps=4, resolution=16)
    assert len(halved.frames) == 8
    for j, frame in enumerate(halved.frames):
        near = clip[max(0, 2 * j - 1):2 * j + 2]
        assert any(np.array_equal(frame, candidate) for candidate in near), j
    write_video(tmp_path / "held.mp4", clip, fps=8)  # mp4 keeps every frame: constant rate
    assert not video_decode.is_variable_rate(str(tmp_path / "held.mp4"))


def test_a_gif_at_a_rate_gif_cannot_store_decodes_at_that_rate(tmp_path):
    """8 fps is 12.5 hundredths of a second a frame: the frames alternate 12 and 13 so that
    ffmpeg reads the file at 8 fps (with 12 each it read 8.33 fps, one frame short at 2 s)."""
    clip = np.zeros((16, 16, 16, 3), np.uint8)
    for j in range(16):
        clip[j, :, :j + 1] = 255
    write_video(tmp_path / "eight.gif", clip, fps=8)
    decoded = video_decode.decode_video(tmp_path / "eight.gif", fps=8, resolution=16)
    np.testing.assert_array_equal(decoded.frames, clip)


@pytest.mark.parametrize("height,width", [(24, 32), (32, 24)])
def test_frames_are_centre_squares(height, width):
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0] = 255  # red margins
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    frame[top:top + side, left:left + side] = (0, 0, 255)  # a blue centre square
    square = video_decode.centre_square(frame, 16)
    np.testing.assert_array_equal(square, np.broadcast_to(np.uint8([0, 0, 255]), (16, 16, 3)))


def test_the_report_lists_every_skipped_file_with_its_reason(reference):
    builder, _ = reference
    report = video_folder.read_build_report(builder)
    paths = {reason: sorted(s["path"] for s in report["skipped"][reason])
             for reason in video_folder.SKIP_REASONS}
    assert paths == {"missing_file": ["missing.mp4"], "no_caption": ["uncaptioned.mp4"],
                     "duplicate_row": ["landscape.mp4"], "bad_row": [],
                     "unreadable": sorted(BROKEN), "too_short": ["short.mp4"]}
    assert all(s["detail"] for entries in report["skipped"].values() for s in entries)
    assert "ffmpeg" in report["skipped"]["unreadable"][0]["detail"]
    assert report["clips"] == {"train": builder.info.splits["train"].num_examples}
    assert report["skipped_counts"]["unreadable"] == 2


def assert_same_records(found, expected):
    assert len(found) == len(expected)
    for got, want in zip(found, expected):
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def refuse_decoding(*args, **kwargs):
    raise AssertionError("a file that already has a decoded part was decoded again")


def test_an_interrupted_build_resumes_to_the_same_dataset(videos, reference, tmp_path,
                                                          monkeypatch):
    decode, calls, kill_at = video_parts.decode_video, [], [3]

    def killed_on_the_third(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == kill_at[0]:
            raise RuntimeError("killed")
        return decode(*args, **kwargs)

    monkeypatch.setattr(video_parts, "decode_video", killed_on_the_third)
    with pytest.raises(RuntimeError, match="killed"):
        build(tmp_path, videos)
    assert not (tmp_path / "video_folder").exists()  # no dataset, only decoded parts
    calls.clear()
    kill_at[0] = None
    builder = build(tmp_path, videos)
    captioned = len(SOURCES) + 1 + len(BROKEN)
    assert len(calls) == captioned - 2  # the two files decoded before the kill are kept
    assert_same_records(records(builder), reference[1])


def test_two_processes_decode_disjoint_shares_that_combine_into_the_same_dataset(
        videos, reference, tmp_path, monkeypatch):
    folder, table = videos
    shares = [video_folder.decode_share(tmp_path, folder, table, RESOLUTION, FPS, index, 2,
                                        progress=False) for index in range(2)]
    assert sum(s.files for s in shares) == len(SOURCES) + 1 + len(BROKEN)
    assert min(s.files for s in shares) > 0 and sum(s.unreadable for s in shares) == 2

    monkeypatch.setattr(video_parts, "decode_video", refuse_decoding)
    assert_same_records(records(build(tmp_path, videos)), reference[1])


def test_validation_takes_a_fixed_fraction_of_files_by_path_hash(videos, data_dir, reference,
                                                                 monkeypatch):
    monkeypatch.setattr(video_parts, "decode_video", refuse_decoding)  # the parts are reused
    builder = build(data_dir, videos, validation_fraction=0.5)
    assert builder.builder_config.name != reference[0].builder_config.name
    split_paths = {split: {r["source_path"].decode() for r in records(builder, split)}
                   for split in ("train", "validation")}
    everything = {r["source_path"].decode() for r in reference[1]}
    assert split_paths["train"] | split_paths["validation"] == everything
    for split, paths in split_paths.items():
        assert paths and all(video_folder.split_of(p, 0.5) == split for p in paths)


WEBVID = ("videoid,contentUrl,duration,page_dir,name\n"
          "1001,https://example.com/1001.mp4,PT00H00M02S,000001_000050,\"A dog, running\"\n"
          "1002,https://example.com/1002.mp4,PT00H00M02S,000001_000050,Waves\n"
          "1003,https://example.com/1003.mp4,PT00H00M02S,000051_000100,Lost\n"
          "1004,https://example.com/1004.mp4,PT00H00M02S,000051_000100,Flat name\n")
FILES = ["000001_000050/1001.mp4", "000001_000050/1002.webm", "1004.mp4", "readme.txt",
         "000051_000100/stray.mp4"]


@pytest.mark.parametrize("name,text", [
    ("webvid.csv", WEBVID),
    ("generic.jsonl", '{"video": "000001_000050/1001.mp4", "text": "A dog, running"}\n'
                      '{"video": "000001_000050/1002.webm", "text": "Waves"}\n'
                      'not json\n\n'
                      '{"video": "lost/1003.mp4", "text": "Lost"}\n'
                      '{"video": "1004.mp4", "text": "Flat name"}\n'),
])
def test_webvid_csv_and_jsonl_tables_pair_the_same_files(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    rows, bad = captions.read_caption_table(tmp_path / name)
    match = captions.match_captions(rows, FILES)
    assert match.captions == {"000001_000050/1001.mp4": "A dog, running",
                              "000001_000050/1002.webm": "Waves", "1004.mp4": "Flat name"}
    assert [s.path for s in match.skipped["missing_file"]] in (["000051_000100/1003"],
                                                                ["lost/1003.mp4"])
    assert [s.path for s in match.skipped["no_caption"]] == ["000051_000100/stray.mp4"]
    assert [s.detail for s in bad] == ([] if name.endswith(".csv")
                                       else ["line 3: not JSON (Expecting value)"])


def test_bad_tables_and_settings_are_refused_clearly(videos, tmp_path):
    folder, table = videos
    (tmp_path / "wrong.csv").write_text("file,title\na.mp4,x\n")
    with pytest.raises(captions.CaptionTableError, match=r"columns \['file', 'title'\].*caption"):
        captions.read_caption_table(tmp_path / "wrong.csv")
    with pytest.raises(captions.CaptionTableError, match="allowed: .csv, .jsonl"):
        video_folder.make_builder_config(folder, folder / "notes.mp4")
    for settings, message in [
            (dict(resolution=0), "resolution must be >= 1; got 0"),
            (dict(num_frames=2.5), "num_frames must be an integer; got 2.5"),
            (dict(fps=-1.0), r"fps must be in \[0.1, 240\] \(frames per second\); got -1.0"),
            (dict(clip_stride=0), "clip_stride must be >= 1; got 0"),
            (dict(validation_fraction=1.0), r"validation_fraction must lie in \[0, 1\)")]:
        with pytest.raises(ValueError, match=message):
            video_folder.make_builder_config(folder, table, **settings)
    with pytest.raises(ValueError, match="is not a folder"):
        video_folder.make_builder_config(tmp_path / "nowhere", table)
    (tmp_path / "broken.csv").write_text("path,caption\nnotes.mp4,text\ntruncated.mp4,x\n")
    with pytest.raises(DatasetBuildError, match="No training clip.*2 unreadable.*notes.mp4"):
        video_folder.prepare_video_folder_dataset(tmp_path, folder, tmp_path / "broken.csv",
                                                  progress=False)
    assert not (tmp_path / "video_folder").exists()


@pytest.mark.parametrize("fields,message", [
    (dict(source="youtube"), r"source 'youtube' is not one of \('shapes', 'video_folder'\)"),
    (dict(source="video_folder", video_dir="v"), "needs video_dir .* and captions"),
    (dict(video_dir="v", captions="c.csv"), "video_dir and captions are read only with "
                                            "source='video_folder'"),
    (dict(source="video_folder", video_dir="v", captions="c.csv", fps=0.0),
     r"fps must be in \[0.1, 240\]"),
    (dict(source="video_folder", video_dir="v", captions="c.csv", clip_stride=-1),
     "clip_stride must be >= 0 .*0 = num_frames"),
    (dict(source="video_folder", video_dir="v", captions="c.csv", validation_fraction=1.5),
     r"validation_fraction must lie in \[0, 1\)"),
])
def test_bad_data_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        DataSettings(**fields)


def test_the_cli_builds_the_dataset_and_prints_its_report(videos, data_dir, reference, capsys):
    folder, table = videos
    assert cli.main(["build-video-dataset", "--video-dir", str(folder), "--captions", str(table),
                     "--resolution", str(RESOLUTION), "--frames", str(LENGTH), "--fps", "8",
                     "--stride", str(STRIDE), "--data-dir", str(data_dir)]) == 0
    clips = len(reference[1])
    assert f"clips: {clips} train; skipped: 1 missing_file" in capsys.readouterr().out
    assert cli.main(["build-video-dataset", "--video-dir", str(folder), "--captions", str(table),
                     "--process-index", "2", "--process-count", "2"]) == 2
    assert "--process-index must lie in [0, --process-count=2)" in capsys.readouterr().err


def test_in_training_evaluation_of_shapes_prompts_is_refused_for_a_video_folder(videos):
    folder, table = videos
    config = t2i_shapes.get_config("variant=tiny")
    config.data.update(source="video_folder", video_dir=str(folder), captions=str(table))
    config.log.eval_every_steps = 5
    with pytest.raises(ConfigError, match="set config.log.eval_every_steps=0"):
        check_evaluation_fits_data(parse_run_config(config))
    config.log.eval_every_steps = 0
    check_evaluation_fits_data(parse_run_config(config))
