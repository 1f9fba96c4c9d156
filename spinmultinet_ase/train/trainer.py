"""The training loop: AdamW, plateau schedule, EMA, clipping, early stopping, resumable.

A run writes into ``output_dir``: ``last.ckpt`` after every epoch (resume from it with
``resume=True``; the one before is kept as ``previous.ckpt``, the fallback when ``last.ckpt``
is unreadable), ``best.ckpt`` (the EMA weights of the best validation loss so far),
``metrics.csv`` (one row per epoch), and at the end ``summary.json`` and the exported
``model.pt``. Every file is written atomically. ``last.ckpt`` is the one record of the run:
it holds the metrics rows and the best weights too, and ``metrics.csv`` and ``best.ckpt`` are
rewritten from it, so a kill at any instant loses at most the epoch in progress.
Data order is drawn from a generator seeded by (seed, epoch), so a resumed run continues
exactly as an uninterrupted one would.

Started by ``torchrun``, the ranks share each batch (:mod:`spinmultinet_ase.train.distributed`)
and rank 0 alone writes the files. With ``init_from``, training starts from a trained model
(:mod:`spinmultinet_ase.train.finetune`); ``data.replay_paths`` mixes earlier data into every
batch (:mod:`spinmultinet_ase.train.replay`). ``init_from`` only starts a run: a resumed one
takes its model, target scales and replay split rules from its checkpoint.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from spinmultinet_ase import keys
from spinmultinet_ase.checkpoint import load_checkpoint, save_checkpoint
from spinmultinet_ase.data.graph import closest_contacts, collate, moment_sizes
from spinmultinet_ase.export import DTYPES, export_model
from spinmultinet_ase.materials import trained_materials
from spinmultinet_ase.model import ModelConfig, SpinMultiNet
from spinmultinet_ase.outputs import atomic_path, is_temporary, writable_folder, write_text_atomic
from spinmultinet_ase.train import distributed
from spinmultinet_ase.train.config import TrainConfig, config_from_dict
from spinmultinet_ase.train.dataset import (
    Dataset,
    build_datasets,
    data_fingerprint,
    reference_energies,
)
from spinmultinet_ase.train.finetune import Source, fit_new_shifts, grown_model, load_source
from spinmultinet_ase.train.loss import ErrorAccumulator, MultiTaskLoss, partner_deviations
from spinmultinet_ase.train.replay import (
    mixed_batch_indices,
    replay_share,
    replay_split_rules,
    rules_by_content,
    split_rules,
    with_replay,
)


def _target_scales(train: Dataset, shifts: np.ndarray) -> dict[str, float]:
    """Spread of each target in the training set (energy per atom after reference shifts)."""
    per_atom, forces, stress, moments = [], [], [], []
    for sample in train.samples:
        baseline = float(shifts[sample[keys.SPECIES].numpy()].sum())
        per_atom.append((float(sample[keys.TARGET_ENERGY]) - baseline) / len(sample[keys.SPECIES]))
        forces.append(sample[keys.TARGET_FORCES].reshape(-1).double().numpy())
        if bool(sample[keys.HAS_STRESS]):
            stress.append(sample[keys.TARGET_STRESS].reshape(-1).double().numpy())
        moments.append(sample[keys.TARGET_MAGMOMS].reshape(-1).double().numpy())

    # per-atom energies relative to their ordering partners (the partner loss's target)
    groups = torch.cat([s[keys.PARTNER_GROUP] for s in train.samples])
    relative = partner_deviations(torch.tensor(per_atom, dtype=torch.float64), groups).numpy()

    def spread(values: np.ndarray, floor: float) -> float:
        return max(float(np.sqrt(np.mean(values**2))) if values.size else floor, floor)

    return {
        "energy": spread(np.array(per_atom) - np.mean(per_atom), 1e-3),
        "forces": spread(np.concatenate(forces), 1e-2),
        "stress": spread(np.concatenate(stress) if stress else np.zeros(0), 1e-4),
        "magmoms": spread(np.concatenate(moments), 1e-2),
        "partners": spread(relative, 1e-3),
    }


def guess_ranges(train: Dataset, spread: float) -> dict[str, list[float]]:
    """Per element of the training frames: the smallest and largest guessed moment size (μB)
    the model saw, widened by the guess rescaling ``spread``."""
    sizes: dict[str, list[float]] = {}
    for atoms in train.frames:
        frame_sizes = moment_sizes(atoms.get_initial_magnetic_moments())
        for symbol, size in zip(atoms.get_chemical_symbols(), frame_sizes, strict=True):
            sizes.setdefault(symbol, []).append(float(size))
    return {s: [min(v) * (1 - spread), max(v) * (1 + spread)] for s, v in sorted(sizes.items())}


def training_contacts(train: Dataset, species: Sequence[str]) -> dict[str, float]:
    """Per pair of elements: the shortest distance (Å) between them in the training frames."""
    shortest: dict[str, float] = {}
    for sample in train.samples:
        for pair, length in closest_contacts(sample, species).items():
            shortest[pair] = min(length, shortest.get(pair, np.inf))
    return dict(sorted(shortest.items()))


def materials_learned(train: Dataset, source: Source | None) -> dict[str, int] | None:
    """Frame count per reduced formula of the training frames (replayed ones included), plus
    the counts the ``source`` model records (:func:`~spinmultinet_ase.materials.trained_materials`).

    None when fine-tuned from a source that records no materials: what it learned is unknown,
    and a list of this run's materials alone would call the source's own materials untrained.
    """
    if source is not None and source.materials is None:
        return None
    return trained_materials(train.frames, source.materials if source else None)


def split_materials(metadata: Mapping[str, Any], paths: Sequence[str | Path]) -> dict[str, int]:
    """The trained materials of a model file that predates the record, rebuilt from its own
    train split: the split of its recorded config (``train_config``) of the data files
    ``paths`` (the files it was trained on, or files grown from them by appending).

    Raises:
        ValueError: the model was fine-tuned or replayed earlier data (its record would need
            its source's or the replayed frames), or the training and validation frames of
            ``paths`` do not give its recorded data fingerprint and train frame count (not the
            data it learned from).
    """
    config = config_from_dict(metadata["train_config"])
    if config.init_from or config.data.replay_paths:
        raise ValueError(
            "a fine-tuned model also learned its source's materials and a replaying run its "
            "replayed frames' (data.path alone does not give them)"
        )
    data = dataclasses.replace(config.data, path=tuple(str(path) for path in paths))
    model = config.model
    datasets = build_datasets(
        data, model.species, model.cutoff, DTYPES[config.dtype], model.spin_mode
    )
    recorded = metadata["training"]
    fingerprint = data_fingerprint(datasets)
    if (fingerprint, len(datasets["train"])) != (
        recorded["data"]["fingerprint"],
        recorded["num_frames"]["train"],
    ):
        raise ValueError(
            f"{', '.join(data.paths)}: not the data the model was trained on (fingerprint "
            f"{fingerprint[:16]}, {len(datasets['train'])} train frames; the model records "
            f"{recorded['data']['fingerprint'][:16]}, {recorded['num_frames']['train']})"
        )
    return trained_materials(datasets["train"].frames)


def _mean_neighbours(train: Dataset) -> float:
    edges = sum(s[keys.EDGE_INDEX].shape[1] for s in train.samples)
    return edges / sum(len(s[keys.SPECIES]) for s in train.samples)


def initial_model(
    config: TrainConfig, train: Dataset, source: Source | None = None
) -> tuple[SpinMultiNet, dict[str, float]]:
    """The model to start from and the target scales: a fresh model whose normalisation comes
    from the training data, or the ``source`` model grown to the config's species."""
    torch.manual_seed(config.seed)
    if source is not None:
        grown = source.model_config(config.model.species, config.model.spin_mode)
        model = grown_model(source, grown, DTYPES[config.dtype])
        fit_new_shifts(model, train, len(source.species))
        return model, _target_scales(train, model.energy_shift.double().numpy())
    model_config = dataclasses.replace(config.model, avg_num_neighbors=_mean_neighbours(train))
    model = SpinMultiNet(model_config).to(DTYPES[config.dtype])
    shifts = reference_energies(train, model_config.species)
    scales = _target_scales(train, shifts)
    with torch.no_grad():
        model.energy_shift.copy_(torch.as_tensor(shifts))
        model.energy_scale.fill_(scales["forces"])
        model.moment_scale.fill_(scales["magmoms"])
    return model, scales


def evaluate_dataset(
    model: torch.nn.Module, dataset: Dataset, loss: MultiTaskLoss | None, batch_size: int
) -> dict[str, float]:
    """Errors (and the loss, if given) of ``model`` on ``dataset``, batch by batch."""
    accumulator = ErrorAccumulator()
    total, count = 0.0, 0
    model.eval()
    for batch in dataset.batches(batch_size):
        out = model(batch)
        accumulator.add(out, batch)
        if loss is not None:
            total += float(loss(out, batch)[0].detach()) * len(batch[keys.NUM_ATOMS])
            count += len(batch[keys.NUM_ATOMS])
    result = accumulator.summary()
    if loss is not None and count:
        result["loss"] = total / count
    return result


# The files a run writes into its output_dir (all that --overwrite removes).
RUN_FILES = ("last.ckpt", "previous.ckpt", "best.ckpt", "metrics.csv", "summary.json", "model.pt")


class Trainer:
    """One training run; ``run()`` trains until a stopping rule fires and exports the model.

    Args:
        config: the run's settings.
        resume: continue the run in ``config.output_dir`` from its ``last.ckpt`` (a folder
            without a run starts one).
        progress: show a progress bar.
        overwrite: start over in an ``output_dir`` that holds a run, deleting its files.

    Raises:
        ValueError: ``output_dir`` holds a run and neither ``resume`` nor ``overwrite`` is
            given, it is not writable, or the checkpoint to resume from does not fit.
    """

    def __init__(
        self,
        config: TrainConfig,
        resume: bool = False,
        progress: bool = True,
        overwrite: bool = False,
    ) -> None:
        self.config = config
        self.progress = progress
        self.output = Path(config.output_dir)
        for path in config.data.paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"no labelled data at {path} (data.path)")
        self.world = distributed.world()
        distributed.check_batch_size(config.optim.batch_size, self.world.size)
        if config.data.replay_paths:
            replay_share(config.data.replay_fraction, config.optim.batch_size)
        # init_from only starts a run: a resumed one takes its model from its checkpoint
        starts = not (resume and has_checkpoint(self.output))
        source = load_source(config.init_from) if config.init_from and starts else None
        checkpoint = _on_main(lambda: _prepare_run_folder(self.output, resume, overwrite))
        torch.set_num_threads(config.num_threads)
        dtype = DTYPES[config.dtype]
        model_config = config.model
        if checkpoint is not None:
            model_config = ModelConfig.from_dict(checkpoint["model_config"])
        elif source is not None:
            model_config = source.model_config(config.model.species, config.model.spin_mode)
        self.data = build_datasets(
            config.data, model_config.species, model_config.cutoff, dtype, model_config.spin_mode
        )
        self.replay_groups: list[int] = []
        # how each replay file is split (replay_split_rules), recorded for evaluation and for
        # fine-tuning this model again
        self.replay_records: list[dict[str, Any]] = []
        if config.data.replay_paths:
            if checkpoint is None:
                self.replay_records = replay_split_rules(config.data, source)
            else:  # the rules the run recorded, matched by content (the files may move)
                self.replay_records = rules_by_content(
                    config.data.replay_paths,
                    split_rules(dataclasses.asdict(config.data)),
                    checkpoint.get("replay_split_rules") or [],
                    f"{self.output}/last.ckpt",
                )
            self.data["train"], self.replay_groups = with_replay(
                self.data["train"],
                config.data,
                self.replay_records,
                model_config.species,
                model_config.cutoff,
                dtype,
                model_config.spin_mode,
            )
        self.data_fingerprint = data_fingerprint(self.data)
        self.trained_materials = materials_learned(self.data["train"], source)
        if checkpoint is None:
            self.model, self.scales = initial_model(config, self.data["train"], source)
        else:  # its weights are restored below
            self.model = SpinMultiNet(model_config).to(dtype)
            self.scales = checkpoint["scales"]
        if overwrite:  # only now: bad data or a bad source leaves the old run as it was
            _on_main(lambda: _clear_run_files(self.output))
        self.loss = MultiTaskLoss(config.loss, self.scales)
        optim = config.optim
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=optim.learning_rate, weight_decay=optim.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=optim.lr_factor, patience=optim.lr_patience
        )
        self.ema = AveragedModel(
            self.model, avg_fn=_ema_with_warmup(optim.ema_decay), use_buffers=True
        )
        self.best_model = copy.deepcopy(self.ema.module)
        self.epoch = 0
        self.best_loss = math.inf
        self.best_epoch = -1
        self.elapsed = 0.0
        self.rows: list[dict[str, float]] = []
        if checkpoint is not None:
            self._restore(checkpoint)

    # ---- checkpoints ---------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "train_config": self.config.to_dict(),
            "raw_model_state": self.model.state_dict(),
            "ema_state": self.ema.state_dict(),
            "best_model_state": self.best_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "elapsed_s": self.elapsed,
            "metrics": self.rows,
            "scales": self.scales,
            "data_fingerprint": self.data_fingerprint,
            "replay_split_rules": self.replay_records or None,
            "trained_materials": self.trained_materials,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        # The budget (optim) may change on resume; what defines the run may not. The data files
        # may move (the fingerprint below checks their frames), so their paths are not compared,
        # nor the materials the run's reports cover. Nor is init_from's path (the source is not
        # read on resume), only whether the run fine-tunes.
        if "metrics" not in state or "best_model_state" not in state:
            raise ValueError(
                f"{self.output}/last.ckpt was written by an older spinmultinet-ase (no metrics "
                "inside); start over with --overwrite or choose a new output_dir"
            )
        saved, current = (
            {
                **config,
                "data": {k: v for k, v in config["data"].items() if k not in ("path", "materials")},
                "init_from": bool(config.get("init_from")),
            }
            for config in (state["train_config"], self.config.to_dict())
        )
        defining = ("data", "model", "loss", "seed", "dtype", "init_from")
        changed = [k for k in defining if saved[k] != current[k]]
        if changed:
            raise ValueError(
                f"{self.output}/last.ckpt was written with another config ({', '.join(changed)} "
                "differ); resume with the same settings or choose a new output_dir"
            )
        if state.get("data_fingerprint") != self.data_fingerprint:
            raise ValueError(
                f"{self.output}/last.ckpt was trained on other data than is now in "
                f"{', '.join(self.config.data.paths)} (frames were added or changed); "
                "resume on frozen copies of the data it started with (spinmultinet train --data "
                "COPY ...) or choose a new output_dir"
            )
        self.model.load_state_dict(state["raw_model_state"])
        self.ema.load_state_dict(state["ema_state"])
        self.best_model.load_state_dict(state["best_model_state"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = state["epoch"]
        self.best_loss = state["best_loss"]
        self.best_epoch = state["best_epoch"]
        self.elapsed = state["elapsed_s"]
        self.rows = list(state["metrics"])
        # the weights descend from the source it started from, unknown here if not recorded
        self.trained_materials = state.get(
            "trained_materials", None if self.config.init_from else self.trained_materials
        )
        # what a kill may have left behind is rewritten from the checkpoint
        if self.world.main:
            self._write_records(best=True)

    def _save(self, best: bool) -> None:
        """Checkpoint the run, then the files derived from it (metrics, best weights).

        ``model_state`` holds the EMA weights: the ones evaluated, exported and shipped.
        Only rank 0 writes.
        """
        if not self.world.main:
            return
        save_checkpoint(
            self.ema.module,
            self.output / "last.ckpt",
            previous=self.output / "previous.ckpt",
            **self._state(),
        )
        self._write_records(best)

    def _write_records(self, best: bool) -> None:
        _write_csv(self.output / "metrics.csv", self.rows)
        if best and self.best_epoch >= 1:
            save_checkpoint(
                self.best_model,
                self.output / "best.ckpt",
                train_config=self.config.to_dict(),
                epoch=self.best_epoch,
                best_loss=self.best_loss,
                data_fingerprint=self.data_fingerprint,
                replay_split_rules=self.replay_records or None,
                trained_materials=self.trained_materials,
            )

    # ---- loop ----------------------------------------------------------------------------
    def _train_epoch(self) -> float:
        self.model.train()
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + self.epoch)
        train = self.data["train"]
        total, count = 0.0, 0
        for indices in self._batch_indices(generator):
            samples = [train.samples[i] for i in indices]
            factors = self._guess_factors(samples, generator)
            mine = distributed.split_batch(samples, self.world.size)[self.world.rank]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._share_loss([samples[i] for i in mine], [factors[i] for i in mine])
            if loss.requires_grad:  # an empty share has no graph; its gradients count as zero
                loss.backward()
            loss = distributed.sum_gradients(self.model.parameters(), loss.detach())
            torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), self.config.optim.grad_clip_norm
            )
            self.optimizer.step()
            self.ema.update_parameters(self.model)
            total, count = total + float(loss) * len(samples), count + len(samples)
        return total / count

    def _batch_indices(self, generator: torch.Generator):
        """The global batches of one epoch, as sample indices of the training set."""
        train, batch_size = self.data["train"], self.config.optim.batch_size
        if self.replay_groups:
            fraction = self.config.data.replay_fraction
            return mixed_batch_indices(train, self.replay_groups, fraction, batch_size, generator)
        return train.batch_indices(batch_size, generator)

    def _share_loss(self, samples: list[dict], factors: list[torch.Tensor]) -> torch.Tensor:
        """The loss of this rank's share of a batch, normalised by the whole batch's counts
        (several ranks' losses add up to the loss of the whole batch; a rank whose share is
        empty adds zero)."""
        dtype = DTYPES[self.config.dtype]
        terms, out, batch = {}, None, None
        if samples:
            batch = collate(samples)
            guesses = batch[keys.INITIAL_MAGMOMS]
            scale = torch.cat(factors).to(guesses.dtype)
            batch[keys.INITIAL_MAGMOMS] = guesses * scale.reshape(
                (-1,) + (1,) * (guesses.dim() - 1)
            )
            out = self.model(batch)
            terms = self.loss.terms(out, batch)
        if self.world.size == 1:
            return self.loss(out, batch)[0]
        names = ("energy", "forces", "stress", "magmoms", "partners")
        sizes = torch.tensor([terms[n].numel() if n in terms else 0 for n in names])
        counts = dict(zip(names, distributed.all_reduce_sum(sizes).tolist(), strict=True))
        if not samples:
            return torch.zeros((), dtype=dtype)
        return self.loss(out, batch, counts)[0]

    def _guess_factors(self, samples: list[dict], generator: torch.Generator) -> list[torch.Tensor]:
        """Per sample, the factors its guessed moments are scaled by (``data.guess_rescale``):
        each drawn from U(1 − r, 1 + r), for the whole global batch at once."""
        sizes = [len(sample[keys.SPECIES]) for sample in samples]
        spread = self.config.data.guess_rescale
        if spread == 0.0:
            return [torch.ones(n, dtype=torch.float64) for n in sizes]
        factors = 1.0 + spread * (2.0 * torch.rand(sum(sizes), generator=generator) - 1.0)
        return list(torch.split(factors, sizes))

    def _stop_reason(self) -> str:
        optim = self.config.optim
        if self.epoch >= optim.max_epochs:
            return "max_epochs"
        if self.elapsed >= 60 * optim.max_minutes:
            return "time budget"
        if self.epoch - self.best_epoch > optim.early_stopping_patience:
            return "early stopping"
        if self.optimizer.param_groups[0]["lr"] < optim.min_learning_rate:
            return "learning rate floor"
        return ""

    def validation_set(self) -> Dataset:
        """The frames the best model is chosen on: the validation split, else the training
        frames of the data itself (replayed frames left out: they are the old materials'
        training data, many and unchanged, and would dominate the choice)."""
        if len(self.data["validation"]):
            return self.data["validation"]
        train = self.data["train"]
        own = [i for i, origin in enumerate(train.origins) if origin == 0]
        # copies: Dataset numbers its partner groups in the samples it is given
        return Dataset([train.frames[i] for i in own], [dict(train.samples[i]) for i in own])

    def run(self) -> dict[str, Any]:
        """Train, then export the best EMA model and write ``summary.json``."""
        validation = self.validation_set()
        bar = tqdm(
            total=self.config.optim.max_epochs,
            initial=self.epoch,
            disable=not (self.progress and self.world.main),
            desc="epochs",
        )
        reason = self._stop_reason()
        while not reason:
            start = time.perf_counter()
            train_loss = self._train_epoch()
            metrics = _on_main(lambda: evaluate_dataset(self.ema.module, validation, self.loss, 32))
            if not (math.isfinite(train_loss) and math.isfinite(metrics["loss"])):
                raise ValueError(
                    f"the loss is not finite in epoch {self.epoch + 1} (training {train_loss:.3g}, "
                    f"validation {metrics['loss']:.3g}); {self.output}/last.ckpt keeps epoch "
                    f"{self.epoch}: lower optim.learning_rate or look for extreme labels"
                )
            self.scheduler.step(metrics["loss"])
            self.epoch += 1
            self.elapsed += distributed.all_reduce_max(time.perf_counter() - start)
            improved = metrics["loss"] < self.best_loss
            if improved:
                self.best_loss, self.best_epoch = metrics["loss"], self.epoch
                self.best_model.load_state_dict(self.ema.module.state_dict())
            self.rows.append(
                {
                    "epoch": self.epoch,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "train_loss": train_loss,
                    **{f"val_{k}": v for k, v in metrics.items()},
                    "elapsed_s": self.elapsed,
                }
            )
            self._save(best=improved)
            # no forced refresh: the bar redraws at most every tqdm mininterval (TQDM_MININTERVAL)
            bar.set_postfix(
                loss=f"{metrics['loss']:.3g}",
                E=f"{metrics.get('energy_mae', 0):.2f}",
                F=f"{metrics.get('forces_mae', 0):.0f}",
                M=f"{metrics.get('magmoms_mae', 0):.3f}",
                refresh=False,
            )
            bar.update(1)
            reason = self._stop_reason()
        bar.close()
        return _on_main(lambda: self._finish(reason))

    def _finish(self, reason: str) -> dict[str, Any]:
        best = self.best_model.eval()
        results = {
            name: evaluate_dataset(best, dataset, self.loss, 32)
            for name, dataset in self.data.items()
            if len(dataset)
        }
        summary = {
            "stopped_because": reason,
            "epochs": self.epoch,
            "best_epoch": self.best_epoch,
            "wall_time_minutes": self.elapsed / 60,
            "num_frames": {name: len(dataset) for name, dataset in self.data.items()},
            "data": {"path": self.config.data.path, "fingerprint": self.data_fingerprint},
            "init_from": self.config.init_from,
            "target_scales": self.scales,
            "guess_ranges_muB": guess_ranges(self.data["train"], self.config.data.guess_rescale),
            "closest_contacts_A": training_contacts(self.data["train"], best.config.species),
            "trained_materials": self.trained_materials,
            "metrics": results,
        }
        with atomic_path(self.output / "model.pt") as temporary:
            extra = {"training": summary, "train_config": self.config.to_dict()}
            if self.replay_records:
                extra["replay_split_rules"] = self.replay_records
            export_model(best, temporary, extra=extra)
        write_text_atomic(self.output / "summary.json", json.dumps(summary, indent=2))
        return summary


def _on_main(work: Any) -> Any:
    """``work()`` done by rank 0 alone, its result (or its error) shared with every rank."""
    result, error = None, None
    if distributed.world().main:
        try:
            result = work()
        except (ValueError, FileNotFoundError, OSError) as raised:
            error = raised
    result, error = distributed.broadcast_from_main((result, error))
    if error is not None:
        raise error
    return result


def _ema_with_warmup(decay: float):
    """EMA update whose decay grows as (1 + n)/(10 + n) up to ``decay`` (n: updates so far)."""

    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor):
        rate = torch.clamp((1.0 + num_averaged) / (10.0 + num_averaged), max=decay)
        return rate * averaged + (1.0 - rate) * current

    return average


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """All metrics rows as one CSV file, written atomically."""
    text = io.StringIO()
    if rows:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


def _resumable_checkpoint(last: Path, previous: Path) -> dict[str, Any]:
    """``last``, or with a warning ``previous`` when ``last`` is missing or unreadable (a kill
    between the two renames of a save, a damaged file); an unreadable ``last`` is removed, so
    that the next save does not keep it as the fallback.

    Raises:
        ValueError: neither is readable.
    """
    try:
        return load_checkpoint(last)
    except (ValueError, FileNotFoundError) as error:
        if not previous.is_file():
            raise
        try:
            content = load_checkpoint(previous)
        except ValueError as older:
            raise ValueError(
                f"{error}, and so is the previous checkpoint ({older}); start over"
            ) from None
        last.unlink(missing_ok=True)
        warnings.warn(
            f"{error}; resuming from the previous checkpoint {previous} (epoch "
            f"{content['epoch']}) instead",
            UserWarning,
            stacklevel=3,
        )
        return content


def has_checkpoint(output: Path) -> bool:
    """Whether the run folder ``output`` holds a checkpoint to resume from."""
    return any((output / name).is_file() for name in ("last.ckpt", "previous.ckpt"))


def _prepare_run_folder(output: Path, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check (and create) the run folder before any work; the checkpoint to resume from.
    With ``overwrite`` the old run's files stay until :func:`_clear_run_files`, once the new
    run's data and model are built.

    Raises:
        ValueError: both ``resume`` and ``overwrite``; the folder is not writable; it holds a
            run and neither flag is given; or ``resume`` finds files but no checkpoint.
    """
    if resume and overwrite:
        raise ValueError("--resume continues a run and --overwrite starts over; choose one")
    writable_folder(output, "output_dir")
    for stale in filter(is_temporary, output.iterdir()):  # left by a kill mid-write
        stale.unlink()
    present = sorted(p.name for p in output.iterdir())
    if resume and has_checkpoint(output):
        return _resumable_checkpoint(output / "last.ckpt", output / "previous.ckpt")
    if present and not overwrite:
        listed = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
        if resume:
            raise ValueError(
                f"output_dir {output} holds files ({listed}) but no checkpoint to resume from; "
                "--overwrite starts over (deleting its run files) or choose another output_dir"
            )
        raise ValueError(
            f"output_dir {output} already holds files ({listed}); --resume continues its run, "
            "--overwrite starts over (deleting its run files) or choose another output_dir"
        )
    return None


def _clear_run_files(output: Path) -> None:
    """Delete the files of the run in ``output`` (what ``--overwrite`` replaces)."""
    for name in RUN_FILES:
        (output / name).unlink(missing_ok=True)
