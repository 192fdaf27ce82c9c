"""The text stage: pretrain the T5-style encoder on captions (span corruption + paraphrase
matching, see `models.t5`), export it.

`python -m lumiere_jax.main --config configs/t5_shapes.py --workdir W` runs it (the entry point
dispatches on `config.model.kind == "t5"`). The export (`W/export`) holds only the encoder's
weights (`TextParam`s) and a config whose `model.text_encoder` section is the encoder's; image
and video models load it through `config.model.text_checkpoint` and keep it frozen. The export
also holds `probe.json`: linear-probe accuracies of every caption attribute on its features.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from lumiere_jax import settings as S
from lumiere_jax.checkpoints.exported import save_exported
from lumiere_jax.checkpoints.paths import portable_config
from lumiere_jax.data.text_corpus import make_text_iterator
from lumiere_jax.eval.text_probe import probe_text_encoder
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import ModelSettings, parse_model_config
from lumiere_jax.models.t5 import T5Pretrainer
from lumiere_jax.models.text_encoder import TextParam
from lumiere_jax.text import tokenizer
from lumiere_jax.train import metrics as M
from lumiere_jax.train.checkpointing import RunCheckpoints
from lumiere_jax.train.loop import check_finite
from lumiere_jax.train.state import create_train_state, learning_rate_schedule, make_optimizer
from lumiere_jax.train.step import ema_decay_at

SECTIONS = ("model", "data", "objective", "optim", "checkpoint", "log", "probe", "seed")


@dataclasses.dataclass(frozen=True)
class ObjectiveSettings:
    """loss = span_weight * span cross-entropy + paraphrase_weight * paraphrase InfoNCE (each
    caption against the batch's paraphrases at `temperature`, both directions)."""
    span_weight: float = 1.0
    paraphrase_weight: float = 1.0
    temperature: float = 0.1

    def __post_init__(self):
        if self.span_weight < 0 or self.paraphrase_weight < 0 or \
                self.span_weight + self.paraphrase_weight == 0 or self.temperature <= 0:
            raise ValueError(f"need weights >= 0 (not both 0) and temperature > 0, got {self}")


@dataclasses.dataclass(frozen=True)
class TextDataSettings:
    """The caption corpus and its corruption."""
    num_captions: int = 200_000
    batch_size: int = 128
    noise_density: float = 0.25
    mean_span_length: float = 2.0
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
    """Linear probe of the exported encoder: captions to fit on and to score on."""
    num_train: int = 4096
    num_validation: int = 1024
    steps: int = 500


@dataclasses.dataclass(frozen=True)
class TextRunSettings:
    model: ModelSettings  # kind "t5": its text_encoder and decoder
    data: TextDataSettings
    objective: ObjectiveSettings
    optim: S.OptimSettings
    checkpoint: S.CheckpointSettings
    log: S.LogSettings
    probe: ProbeSettings
    seed: int


def parse_text_config(config: ml_collections.ConfigDict) -> TextRunSettings:
    """Validates a text-stage config; errors name the bad key."""
    S.check_sections(config, SECTIONS)
    model = parse_model_config(config.model)
    if model.kind != "t5":
        raise S.ConfigError(f"The text stage trains config.model.kind 't5', got {model.kind!r}.")
    section = lambda cls, name: S.from_config(cls, config.get(name, {}), name)
    return TextRunSettings(
        model=model,
        data=section(TextDataSettings, "data"), objective=section(ObjectiveSettings, "objective"),
        optim=section(S.OptimSettings, "optim"),
        checkpoint=section(S.CheckpointSettings, "checkpoint"), log=section(S.LogSettings, "log"),
        probe=section(ProbeSettings, "probe"), seed=int(config.get("seed", 0)))


def decoder_inputs(targets):
    """Teacher forcing: targets shifted right by one, PAD as the start token."""
    return jnp.pad(targets[:, :-1], ((0, 0), (1, 0)), constant_values=tokenizer.PAD_ID)


def paraphrase_loss(anchor, positive, temperature: float):
    """Symmetric InfoNCE of unit embeddings (B, C): row i of each matches row i of the other.
    Returns (loss, top-1 accuracy of the match)."""
    logits = anchor @ positive.T / temperature
    labels = jnp.arange(anchor.shape[0])
    loss = 0.5 * (optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
                  + optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean())
    return loss, jnp.mean(jnp.argmax(logits, -1) == labels)


def make_text_train_step(graphdef, objective: ObjectiveSettings, optim: S.OptimSettings,
                         optimizer):
    """train_step(state, batch) -> (state, metrics): span cross-entropy plus paraphrase InfoNCE."""

    def loss_fn(params, frozen, batch):
        model = nnx.merge(graphdef, params, frozen)
        logits = model(batch["inputs"], decoder_inputs(batch["targets"]))
        weights = (batch["targets"] != tokenizer.PAD_ID).astype(jnp.float32)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        correct = (jnp.argmax(logits, -1) == batch["targets"]).astype(jnp.float32)
        total = jnp.sum(weights)
        span = jnp.sum(losses * weights) / total
        matching, match_accuracy = paraphrase_loss(model.sentence_embedding(batch["anchor"]),
                                                   model.sentence_embedding(batch["positive"]),
                                                   objective.temperature)
        loss = objective.span_weight * span + objective.paraphrase_weight * matching
        return loss, {"span_loss": span, "token_accuracy": jnp.sum(correct * weights) / total,
                      "paraphrase_loss": matching, "paraphrase_accuracy": match_accuracy}

    def train_step(state, batch):
        (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.frozen, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        decay = ema_decay_at(state.step, optim.ema_decay)
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
        metrics = {"loss": loss, **parts, "grad_norm": optax.global_norm(grads)}
        return state.replace(step=state.step + 1, params=params, ema_params=ema,
                             opt_state=opt_state), metrics

    return train_step


def setup_text(config: ml_collections.ConfigDict):
    """(settings, graphdef, fresh TrainState, jitted step, data iterator)."""
    run = parse_text_config(config)
    if run.model.text_encoder.max_length < 8:
        raise S.ConfigError("model.text_encoder.max_length must be >= 8 for span corruption.")
    model = build_model(run.model, seed=run.seed)
    optimizer = make_optimizer(run.optim)
    graphdef, state = create_train_state(model, optimizer, run.seed, model.trainable)
    step = jax.jit(make_text_train_step(graphdef, run.objective, run.optim, optimizer),
                   donate_argnums=(0,))
    iterator = make_text_iterator(
        num_captions=run.data.num_captions, batch_size=run.data.batch_size,
        seed=run.data.seed + run.seed, input_length=run.model.text_encoder.max_length,
        target_length=run.model.decoder.max_target_length, noise_density=run.data.noise_density,
        mean_span_length=run.data.mean_span_length, num_sentinels=run.model.decoder.num_sentinels)
    return run, graphdef, state, step, iterator


def export_encoder(export_dir: str, model: T5Pretrainer, config: ml_collections.ConfigDict,
                   probe: dict | None) -> None:
    """Writes the encoder's weights and a config that names it (kind "text_encoder")."""
    exported = {"model": {"kind": "text_encoder",
                          "text_encoder": S.as_dict(config.model.text_encoder)},
                "pretraining": portable_config(config.to_dict())}
    extra = {"probe.json": json.dumps(probe, indent=2, sort_keys=True)} if probe else None
    save_exported(export_dir, nnx.state(model.text_encoder, TextParam), exported, extra)


def train_text(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Trains (resuming from the workdir's latest checkpoint), probes and exports the encoder."""
    run, graphdef, state, train_step, iterator = setup_text(config)
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    checkpoints = RunCheckpoints(workdir, run.checkpoint.every_steps, run.checkpoint.max_to_keep)
    resumed, _ = checkpoints.resume_latest(state, iterator)
    state = state if resumed is None else resumed
    lr_schedule = learning_rate_schedule(run.optim)
    writer = M.MetricsWriter(workdir)
    metadata = {"config": config.to_dict(), "jax_version": jax.__version__}
    start, total = int(state.step), run.optim.total_steps
    timer = M.StepTimer(start, total)
    interval = (start, time.perf_counter())
    for step in range(start, total):
        state, step_metrics = train_step(state, next(iterator))
        done = step + 1
        timer.tick(done)
        if done % run.log.every_steps == 0 or done == total:
            step_metrics = jax.device_get(step_metrics)
            check_finite(done, step_metrics)
            now = time.perf_counter()
            record = dict(step_metrics, lr=float(lr_schedule(step)),
                          examples_per_s=run.data.batch_size * (done - interval[0]) / (now - interval[1]))
            interval = (done, now)
            writer.write(done, record)
            print(M.progress_line(done, total, record, timer), flush=True)
        checkpoints.save(done, state, iterator, metadata, force=(done == total))
    checkpoints.close()
    model = nnx.merge(graphdef, state.ema_params, state.frozen)
    probe = probe_text_encoder(model.text_encoder, num_train=run.probe.num_train,
                               num_validation=run.probe.num_validation, steps=run.probe.steps)
    writer.write(total, {f"probe_{name}": value for name, value in probe.items()})
    print("Linear probe (validation captions): "
          + ", ".join(f"{name} {value:.3f}" for name, value in probe.items()), flush=True)
    export_dir = os.path.join(workdir, "export")
    export_encoder(export_dir, model, config, probe)
    return export_dir
