"""Caption tables of a video folder: CSV or JSONL rows naming a video and its caption.

Accepted columns (CSV header, or keys of each JSONL object):
- the caption: `caption`, `text` or `name` (WebVid's caption column);
- the video: `path` or `video` (a path relative to the video folder), or WebVid's `videoid`
  (matched by file name without extension, under `page_dir/` when that column is there).

`match_captions` pairs the rows with the files found in the folder; everything that cannot be
used (a row without its file, a file without a caption, a repeated or malformed row) is returned
as a skip with its reason, never raised.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import posixpath

from etils import epath

CAPTION_COLUMNS = ("caption", "text", "name")
PATH_COLUMNS = ("path", "video")
ID_COLUMN, PAGE_DIR_COLUMN = "videoid", "page_dir"
TABLE_EXTENSIONS = (".csv", ".jsonl")
# Files of these kinds in the folder are expected to have a caption row.
VIDEO_FILE_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg",
                         ".ogv", ".flv", ".wmv", ".ts", ".gif")


class CaptionTableError(ValueError):
    """A caption table that cannot be read at all (missing, unknown format, no usable columns)."""


@dataclasses.dataclass(frozen=True)
class CaptionRow:
    """One row: `video` is a path relative to the video folder, or a WebVid id when `by_id`
    (then `page_dir/videoid` where the table has a page_dir)."""
    line: int
    caption: str
    video: str
    by_id: bool = False


@dataclasses.dataclass(frozen=True)
class Skip:
    """Something left out of the dataset: which file or row, and why (the report's entry)."""
    path: str
    detail: str

    def to_json(self) -> dict:
        return {"path": self.path, "detail": self.detail}


@dataclasses.dataclass
class CaptionMatch:
    """Captioned files (relative path -> caption) and the skips by reason."""
    captions: dict[str, str]
    skipped: dict[str, list[Skip]]


def _column(names, candidates) -> str | None:
    return next((name for name in candidates if name in names), None)


def _columns(names, table: str) -> tuple[str, str]:
    """The caption column and the video column (a path column, or `videoid`)."""
    caption = _column(names, CAPTION_COLUMNS)
    video = _column(names, PATH_COLUMNS + (ID_COLUMN,))
    if caption is None or video is None:
        raise CaptionTableError(
            f"The caption table {table!r} has columns {sorted(names)}; it needs a caption column "
            f"({', '.join(CAPTION_COLUMNS)}) and a video column ({', '.join(PATH_COLUMNS)} or "
            f"WebVid's {ID_COLUMN}).")
    return caption, video


def _row(line: int, values: dict, caption_column: str, video_column: str) -> CaptionRow | Skip:
    caption, video = values.get(caption_column), values.get(video_column)
    if not isinstance(video, (str, int)) or not str(video).strip():
        return Skip("", f"line {line}: no {video_column!r} value")
    video = str(video).strip()
    caption = caption.strip() if isinstance(caption, str) else ""
    if video_column != ID_COLUMN:
        return CaptionRow(line, caption, posixpath.normpath(video))
    page_dir = values.get(PAGE_DIR_COLUMN)
    if isinstance(page_dir, str) and page_dir.strip():
        video = f"{page_dir.strip()}/{video}"
    return CaptionRow(line, caption, video, by_id=True)


def _csv_rows(handle, table: str):
    reader = csv.DictReader(handle)
    if reader.fieldnames is None:
        raise CaptionTableError(f"The caption table {table!r} is empty; a CSV needs a header row.")
    caption_column, video_column = _columns(reader.fieldnames, table)
    for values in reader:
        yield _row(reader.line_num, values, caption_column, video_column)


def _jsonl_rows(handle, table: str):
    columns = None
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            yield Skip("", f"line {line}: not JSON ({error.msg})")
            continue
        if not isinstance(values, dict):
            yield Skip("", f"line {line}: not a JSON object")
            continue
        columns = columns or _columns(values.keys(), table)
        yield _row(line, values, *columns)


def check_table_extension(path) -> str:
    """The table's format (its lower-case extension), refused unless .csv or .jsonl."""
    suffix = epath.Path(path).suffix.lower()
    if suffix not in TABLE_EXTENSIONS:
        raise CaptionTableError(f"Unknown caption table format {os.fspath(path)!r}; allowed: "
                                f"{', '.join(TABLE_EXTENSIONS)}.")
    return suffix


def read_caption_table(path) -> tuple[list[CaptionRow], list[Skip]]:
    """The rows of a .csv or .jsonl caption table, and the malformed rows it skipped."""
    suffix = check_table_extension(path)
    path = epath.Path(path)
    if not path.is_file():
        raise CaptionTableError(f"No such caption table: {str(path)!r}.")
    read = _csv_rows if suffix == ".csv" else _jsonl_rows
    rows, bad = [], []
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as handle:
        for row in read(handle, str(path)):
            (rows if isinstance(row, CaptionRow) else bad).append(row)
    if not rows and not bad:
        raise CaptionTableError(f"The caption table {str(path)!r} has no rows.")
    return rows, bad


def _stem(path: str) -> str:
    return posixpath.splitext(path)[0]


def _resolve(row: CaptionRow, files: set[str], by_stem: dict[str, str],
             by_name: dict[str, list[str]]) -> str | Skip:
    """The folder file a row names, or why none."""
    if not row.by_id:
        if row.video in files:
            return row.video
        return Skip(row.video, f"line {row.line}: no such file in the video folder")
    if row.video in by_stem:
        return by_stem[row.video]
    named = by_name.get(posixpath.basename(row.video), [])
    if len(named) == 1:
        return named[0]
    detail = (f"{len(named)} video files are named {posixpath.basename(row.video)}.*" if named
              else "no video file has this id as its name")
    return Skip(row.video, f"line {row.line}: {detail}")


def match_captions(rows: list[CaptionRow], files: list[str]) -> CaptionMatch:
    """Pairs caption rows with `files` (paths relative to the video folder, '/'-separated).

    Skip reasons: missing_file (a row whose file is not there), no_caption (a video file no
    row names, or whose caption is empty), duplicate_row (a later row for an already captioned
    file).
    """
    videos = sorted(f for f in files if posixpath.splitext(f)[1].lower() in VIDEO_FILE_EXTENSIONS)
    by_stem = {_stem(f): f for f in videos}
    by_name: dict[str, list[str]] = {}
    for f in videos:
        by_name.setdefault(posixpath.basename(_stem(f)), []).append(f)
    skipped = {"missing_file": [], "no_caption": [], "duplicate_row": []}
    captions, rows_of, file_set = {}, {}, set(files)
    for row in rows:
        found = _resolve(row, file_set, by_stem, by_name)
        if isinstance(found, Skip):
            skipped["missing_file"].append(found)
        elif found in rows_of:
            skipped["duplicate_row"].append(
                Skip(found, f"line {row.line}: the file already has a row (line {rows_of[found]})"))
        elif not row.caption:
            rows_of[found] = row.line
            skipped["no_caption"].append(Skip(found, f"line {row.line}: empty caption"))
        else:
            rows_of[found] = row.line
            captions[found] = row.caption
    skipped["no_caption"] += [Skip(f, "no caption row") for f in videos if f not in rows_of]
    return CaptionMatch(captions=dict(sorted(captions.items())), skipped=skipped)
