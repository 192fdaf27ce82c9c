"""The PyTorch peers of the race (benchmarks/peer_models.py), where torch and the peers are
installed (the side venv of benchmarks/peer_venv.sh; skipped elsewhere): built offline from
their model modules alone, inflated where our STUNet has its temporal layers."""
import importlib.util
import sys

import pytest

torch = pytest.importorskip("torch")
# Found, not imported: the packages' own __init__ pulls in what the race leaves out.
PEERS = ("imagen_pytorch", "lumiere_pytorch", "denoising_diffusion_pytorch")
if any(importlib.util.find_spec(name) is None for name in PEERS):
    pytest.skip("the peers are not installed (benchmarks/peer_venv.sh)", allow_module_level=True)

from benchmarks import peer_models  # noqa: E402
from benchmarks.peer_spec import ALL, SIZES, RaceSize  # noqa: E402


def test_imagen_builds_offline_from_its_model_module_alone():
    model = peer_models.build_unet3d(SIZES["tiny"])
    assert peer_models.count(model.parameters()) > 0
    assert not any(name.split(".")[0] in ("transformers", "torchvision") for name in sys.modules)
    assert model.total_temporal_divisor == 4


@pytest.mark.parametrize("size, convs, downsamples", [("tiny", 10, 2), ("small", 15, 3)])
def test_lumiere_inflates_the_karras_unet_where_our_stunet_has_temporal_layers(size, convs,
                                                                             downsamples):
    size = SIZES[size]
    sites = peer_models.lumiere_sites(peer_models.build_karras_unet(size), size)
    # ours: a temporal conv after every res block of the finer levels (2 down, 3 up a level),
    # temporal attention after the coarsest level's 2 + 3 and the middle's 2.
    assert len(sites["conv_module_names"]) == convs
    assert len(sites["attn_module_names"]) == 7
    assert len(sites["downsample_module_names"]) == downsamples
    assert len(sites["upsample_module_names"]) == downsamples


def test_a_tiny_race_step_runs_for_every_peer():
    torch.set_num_threads(1)  # a test shares its cores; the race sets its own threads
    size = SIZES["tiny"].with_clips(batch=1, frames=4)
    for contestant in (peer_models.imagen_contestant(size),
                       peer_models.lumiere_contestant(size, ALL, forward=False)):
        contestant.train_step()
    lumiere = peer_models.lumiere_contestant(size)
    lumiere.forward()
    assert 0 < lumiere.trainable < lumiere.params


def test_karras_unet_refuses_widths_it_cannot_build():
    size = RaceSize("odd", batch=1, frames=4, resolution=32, base_channels=64,
                    channel_mult=(1, 3, 4))
    with pytest.raises(ValueError, match="doubles its width"):
        peer_models.build_karras_unet(size)
