"""launch/colab_sampling.ipynb runs top to bottom on CPU (nbclient, headless), with the shipped
weights, few steps and two CPU devices, so its mesh spreads the prompts over both."""
import json
import pathlib

import pytest

from limits import FAST_COMPILE, SAFETY_LIMIT_S
from lumiere_jax.data import video_io

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOK = pathlib.Path(__file__).resolve().parent.parent / "launch" / "colab_sampling.ipynb"
PROMPTS = ["a large red circle moving quickly to the left on a black background",
           "a small blue square moving slowly up on a white background"]


def test_the_sampling_notebook_runs_and_shows_a_clip_per_prompt(tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    [parameters] = [cell for cell in notebook.cells
                    if "parameters" in cell.get("metadata", {}).get("tags", [])]
    parameters.source += f"\nPROMPTS = {json.dumps(PROMPTS)}\nSTEPS = 2\nSCALE = 2\n"
    monkeypatch.setenv("XLA_FLAGS", f"--xla_force_host_platform_device_count=2 {FAST_COMPILE}")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    client = nbclient.NotebookClient(notebook, timeout=SAFETY_LIMIT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "\n".join(output.get("text", "") for cell in notebook.cells
                     for output in cell.get("outputs", []))
    assert "2 device(s)" in text and "(2, 16, 32, 32, 3) uint8" in text
    html = [output["data"]["text/html"] for output in notebook.cells[-2].outputs
            if "text/html" in output.get("data", {})]
    assert len(html) == 1 and html[0].count("data:image/gif;base64,") == len(PROMPTS)
    clip = video_io.read_video(tmp_path / "clips" / "clip_0.gif")
    assert clip.shape == (16, 64, 64, 3) and clip.std() > 0
