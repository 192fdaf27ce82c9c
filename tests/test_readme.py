"""The README's commands run as written (quick: 2 denoising steps) and write what they say:
the set-up command, the gallery commands (the same as docs/make_gallery.sh's), and the
gallery's files exist in docs/."""
import pathlib
import re
import shlex

import pytest

from lumiere_jax import cli
from lumiere_jax.data import video_io

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
GALLERY_SCRIPT = (ROOT / "docs" / "make_gallery.sh").read_text(encoding="utf-8")


def readme_commands() -> list[str]:
    """Every `lumiere-jax ...` command in the README's bash blocks and gallery table."""
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    commands = [part.strip() for block in blocks for line in block.splitlines()
                for part in line.split("&&") if part.strip().startswith("lumiere-jax ")]
    return commands + re.findall(r"\| `(lumiere-jax [^`]+)` \|", README)


def gallery_commands() -> list[str]:
    """make_gallery.sh's commands with its output folder written as docs/gallery."""
    lines = [line[len("run "):] for line in GALLERY_SCRIPT.splitlines() if line.startswith("run ")]
    return [line.replace('"$OUT/', "docs/gallery/").replace('.gif"', ".gif")
            .replace('.png"', ".png") for line in lines]


def test_the_readme_shows_each_gallery_command_and_its_files():
    shown = readme_commands()
    for command in gallery_commands():
        assert command in shown, command
        for path in re.findall(r"docs/gallery/\S+", command):
            assert (ROOT / path).is_file(), f"{path} is missing: run bash docs/make_gallery.sh"
            assert f"]({path})" in README, f"the README does not show {path}"


@pytest.mark.parametrize("command", readme_commands()[:1] + gallery_commands()[-2:])
def test_a_readme_command_writes_what_it_says(command, tmp_path, monkeypatch, capsys):
    """The set-up command, the SSR gallery command and the image gallery command (the others
    differ from these only in their prompts), each with 2 denoising steps."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs" / "gallery").mkdir(parents=True)
    argv = shlex.split(command)[1:] + ["--steps", "2"] + (
        ["--ssr-steps", "2"] if "--ssr" in command else [])
    assert cli.main(argv) == 0
    out = argv[argv.index("--out") + 1] if "--out" in argv else "sample.mp4"
    written = (video_io.read_image if out.endswith(".png") else video_io.read_video)(out)
    assert written.std() > 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"Wrote {out}: ")
