"""The PyTorch peers of the race, built to a `RaceSize` and wrapped as `Contestant`s.

- imagen-pytorch `Unet3D` (Imagen Video): every weight trains.
- lumiere-pytorch `Lumiere` around denoising-diffusion-pytorch's 2D `KarrasUnet`: as the
  library trains it (backbone frozen, temporal layers only), and with every weight trainable.

Train step = noising + forward + MSE on the noise + backward + Adam step; forward = one
denoiser call without gradients. See `describe` in each builder for what differs from ours.
"""
from __future__ import annotations

import contextlib
import io
import math

import torch
import torch.nn.functional as F

from benchmarks import peer_torch
from benchmarks.peer_spec import ALL, TEMPORAL, Contestant, RaceSize

LEARNING_RATE = 1e-4
TEXT_DROP_PROB = 0.1  # as our configs' cond_drop_prob


def count(weights) -> int:
    return sum(w.numel() for w in weights)


def build_unet3d(size: RaceSize) -> torch.nn.Module:
    """Imagen Video's U-Net at `size`, in its own convention for the same widths (dim =
    base_channels, dim_mults = channel_mult): its up path runs at our widths level by level, its
    down path one level behind (level i > 0 at widths[i - 1]: it widens in the downsampling),
    the middle at the coarsest width. 1 + num_resnet_blocks res blocks a level on each side (the
    first one cross-attends where layer_cross_attns is set); a transformer block (self- and text
    attention, feed-forward) at the coarsest level; temporal strides 2 at every level but the
    coarsest; non-causal temporal attention; plain 3x3 stem, no global-context attention, no
    final res block, mean-pooled text (no Perceiver pool). Upsampling stays its default pixel
    shuffle: its nearest-neighbour option also doubles the frames of a clip (nn.Upsample on 5D).
    """
    if size.num_res_blocks < 1:
        raise ValueError(f"Unet3D needs at least one res block a level, got {size.num_res_blocks}.")
    coarsest_only = tuple(level == size.levels - 1 for level in range(size.levels))
    unet3d = peer_torch.unet3d_class()
    with contextlib.redirect_stdout(io.StringIO()):  # its advice on small base widths
        return unet3d(
            dim=size.base_channels, dim_mults=size.channel_mult,
            num_resnet_blocks=size.num_res_blocks - 1, channels=3,
            text_embed_dim=size.text_width, cond_dim=size.text_width,
            max_text_len=size.text_length, attn_pool_text=False,
            attn_heads=size.num_heads, attn_dim_head=size.head_dim,
            layer_attns=coarsest_only, layer_cross_attns=coarsest_only, attend_at_middle=True,
            temporal_strides=(2,) * (size.levels - 1) + (1,), time_causal_attn=False,
            init_cross_embed=False, init_conv_kernel_size=3, use_global_context_attn=False,
            final_resnet_block=False, dropout=0.0)


def build_karras_unet(size: RaceSize) -> torch.nn.Module:
    """The 2D Karras (EDM2) U-Net at `size`, unconditioned: num_blocks_per_stage res blocks a
    level (plus a resampling res block between levels), width doubling to dim_max, attention at
    the coarsest level, torch's fused attention."""
    widths = tuple(min(size.widths[-1], size.base_channels * 2 ** level)
                   for level in range(size.levels))
    if widths != size.widths:
        raise ValueError(f"KarrasUnet doubles its width each level up to a cap: {widths}, which "
                         f"is not size {size.name!r}'s {size.widths}.")
    karras_unet = peer_torch.karras_unet_class()
    return karras_unet(
        image_size=size.resolution, dim=size.base_channels, dim_max=size.widths[-1],
        num_classes=None, channels=3, num_downsamples=size.levels - 1,
        num_blocks_per_stage=size.num_res_blocks, attn_res=(size.coarsest_resolution,),
        attn_dim_head=size.head_dim, attn_flash=True, dropout=0.0)


def lumiere_sites(unet: torch.nn.Module, size: RaceSize) -> dict[str, list[str]]:
    """Where Lumiere inflates a KarrasUnet the way our STUNet inflates its U-Net: a temporal
    conv after every res block of the finer levels, temporal attention after every res block of
    the coarsest level and the middle, a temporal downsample (upsample) after every spatial one."""
    sites = {"conv_module_names": [], "attn_module_names": [],
             "downsample_module_names": [], "upsample_module_names": []}
    coarsest = size.coarsest_resolution
    block = lambda side: "attn_module_names" if side == coarsest else "conv_module_names"
    side = size.resolution
    for index, encoder in enumerate(unet.downs):
        if encoder.downsample:
            side //= 2
            sites["downsample_module_names"].append(f"downs.{index}")
        else:
            sites[block(side)].append(f"downs.{index}")
    sites["attn_module_names"] += [f"mids.{index}" for index in range(len(unet.mids))]
    for index, decoder in enumerate(unet.ups):
        if decoder.upsample:
            side *= 2
            sites["upsample_module_names"].append(f"ups.{index}")
        else:
            sites[block(side)].append(f"ups.{index}")
    return sites


def build_lumiere(size: RaceSize) -> torch.nn.Module:
    """lumiere-pytorch's `Lumiere` around `build_karras_unet(size)` (which it copies and
    freezes), temporal attention of size.num_heads heads with torch's fused attention."""
    unet = build_karras_unet(size)
    lumiere = peer_torch.lumiere_class()
    return lumiere(unet, image_size=size.resolution, unet_time_kwarg="time", channels=3,
                   attn_inflation_kwargs=dict(heads=size.num_heads, dim_head=size.head_dim,
                                              flash=True),
                   **lumiere_sites(unet, size))


def clip_inputs(size: RaceSize, seed: int) -> dict:
    """Clean clips (B, C, T, H, W) in [-1, 1] and text embeddings with their mask."""
    generator = torch.Generator().manual_seed(seed)
    clips = torch.rand((size.batch, 3, size.frames, size.resolution, size.resolution),
                       generator=generator) * 2 - 1
    text = torch.randn((size.batch, size.text_length, size.text_width), generator=generator)
    return {"clips": clips, "text_embeds": text,
            "text_mask": torch.ones((size.batch, size.text_length), dtype=torch.bool)}


def noised(clips):
    """(x_t, t, noise) on the cosine schedule, t ~ U(0, 1) per clip."""
    t = torch.rand(clips.shape[0])
    noise = torch.randn_like(clips)
    angle = (t * math.pi / 2).view(-1, 1, 1, 1, 1)
    return torch.cos(angle) * clips + torch.sin(angle) * noise, t, noise


def contestant(name: str, model: torch.nn.Module, trains: str, weights: list, conditioning,
               clips, notes: str, forward: bool = True) -> Contestant:
    """`model(x_t, t, **conditioning(training))` raced: forward without gradients, and Adam on
    `weights` (the others frozen) over the MSE to the noise."""
    optimizer = torch.optim.Adam(weights, lr=LEARNING_RATE)
    x_t, t, _ = noised(clips)

    def forward_call():
        model.eval()
        with torch.no_grad():
            model(x_t, t, **conditioning(False))

    def train_call():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        noisy, times, noise = noised(clips)
        F.mse_loss(model(noisy, times, **conditioning(True)), noise).backward()
        optimizer.step()

    all_weights = list(torch.nn.Module.parameters(model))
    return Contestant(name=name, framework=f"torch {torch.__version__}", trains=trains,
                      params=count(all_weights), trainable=count(weights),
                      forward=forward_call if forward else None, train_step=train_call,
                      notes=notes)


def imagen_contestant(size: RaceSize, seed: int = 0) -> Contestant:
    """imagen-pytorch `Unet3D`, every weight trained, text embeddings cross-attended."""
    torch.manual_seed(seed)
    model = build_unet3d(size)
    inputs = clip_inputs(size, seed)

    def conditioning(training: bool) -> dict:
        return {"text_embeds": inputs["text_embeds"], "text_mask": inputs["text_mask"],
                "cond_drop_prob": TEXT_DROP_PROB if training else 0.0}

    return contestant("imagen", model, ALL, list(model.parameters()), conditioning,
                      inputs["clips"], "imagen-pytorch Unet3D, text-conditioned")


def lumiere_contestant(size: RaceSize, trains: str = TEMPORAL, seed: int = 0,
                       forward: bool = True) -> Contestant:
    """lumiere-pytorch `Lumiere` around an unconditioned KarrasUnet; `trains` TEMPORAL (as the
    library trains: its `parameters()`) or ALL (the backbone unfrozen too)."""
    if trains not in (TEMPORAL, ALL):
        raise ValueError(f"trains must be {TEMPORAL!r} or {ALL!r}, got {trains!r}.")
    torch.manual_seed(seed)
    model = build_lumiere(size)
    weights = list(model.parameters())  # Lumiere's own: the temporal layers
    if trains == ALL:
        for weight in model.model.parameters():
            weight.requires_grad_(True)
        weights = list(torch.nn.Module.parameters(model))
    inputs = clip_inputs(size, seed)
    name = "lumiere" if trains == TEMPORAL else "lumiere-all"
    return contestant(name, model, trains, weights, lambda training: {}, inputs["clips"],
                      "lumiere-pytorch Lumiere(KarrasUnet), unconditioned", forward=forward)
