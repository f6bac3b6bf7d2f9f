"""The training loop: seeded, resumable to the same result, checkpointed every epoch
(``last.pt``) and at the best validation score (``best.pt``).

Each step feeds the model a batch of (caption, clip) pairs: a frozen tower's side comes from
the feature cache (``Prepared.audio`` / ``Prepared.text``), a trained tower (or any tower when
``train.cache_frozen`` is false) runs live on the raw audio / captions of the batch. Under
torch.distributed each rank takes its share of the global batch (see ``RetrievalModel.forward``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from soundseek import distributed as dist
from soundseek.device import autocast, check_precision, grad_scaler, select_device
from soundseek.config import ConfigError, to_dict
from soundseek.fileio import atomic_write_bytes
from soundseek.models import RetrievalModel, create_model
from soundseek.models.checkpoint import load_checkpoint, save_checkpoint
from soundseek.models.config import Config
from soundseek.models.factory import checkpoint_payload, model_from_checkpoint
from soundseek.train.data import Prepared, SplitView
from soundseek.train.evaluate import evaluate
from soundseek.train.optim import build_optimizer, build_scheduler
from soundseek.train.step import BatchLoss, concat_reps, to_device

log = logging.getLogger(__name__)


def config_hash(cfg: Config) -> str:
    """Hash of everything that changes the result (not where it is written or how it is shown)."""
    d = to_dict(cfg)
    for k in ("out_dir", "progress", "tensorboard", "num_threads"):
        d["train"].pop(k, None)
    d.pop("eval", None)
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def monitor_value(metrics: dict[str, Any], monitor: str) -> float:
    if monitor == "mAP10":
        return float(metrics["t2a"]["mAP10"])
    return float(sum(metrics[d][k] for d in ("t2a", "a2t") for k in ("R1", "R5", "R10")))


def epoch_batches(view: SplitView, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Shuffled caption positions of the split, batched; a function of (seed, epoch) only."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(view.n_captions, generator=g).numpy()
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    return [b for b in batches if len(b) >= 2]


def positive_ids(view: SplitView, by: str) -> np.ndarray:
    """(n_clips,) id per clip of the split that the loss compares to find positives.

    ``by="clip"``: each clip its own id. ``by="label"``: clips whose first captions are equal
    (case and runs of spaces ignored) share one id, so the loss treats them as positives of each
    other rather than negatives (multi-positive targets for clips sharing a label).
    """
    if by == "clip":
        return np.arange(view.n_clips)
    if by != "label":
        raise ConfigError(f"train.positives_by must be 'clip' or 'label', got {by!r}")
    ids: dict[str, int] = {}
    out = np.empty(view.n_clips, dtype=np.int64)
    for j, clip in enumerate(view.clips):
        key = " ".join(clip.captions[0].lower().split()) if clip.captions else f"\0{j}"
        out[j] = ids.setdefault(key, len(ids))
    return out


def init_weights(model: RetrievalModel, path: str | Path) -> None:
    """Start ``model`` from the weights of checkpoint ``path`` (``train.init_from``): its heads
    and loss must have exactly the model's shapes; tower weights it holds (trained blocks) are
    copied too, and towers it does not hold keep their pretrained weights. Only weights are taken:
    the optimiser, schedule and epoch count start fresh."""
    ckpt = load_checkpoint(path)
    state, own = ckpt.get("model", {}), model.state_dict()
    for k, v in own.items():
        if k.startswith(("scorer.", "loss.")) and (k not in state or tuple(state[k].shape) != tuple(v.shape)):
            got = "missing" if k not in state else f"shape {tuple(state[k].shape)}"
            raise ConfigError(f"train.init_from={path}: {k} is {got}, the recipe needs {tuple(v.shape)} "
                              "(start from a checkpoint of the same scorer, pooling and widths)")
    extra = [k for k in state if k not in own]
    if extra:
        raise ConfigError(f"train.init_from={path}: weights the recipe's model does not have: {extra[:3]}")
    bad = [k for k in state if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ConfigError(f"train.init_from={path}: {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
                          f"the model's is {tuple(own[bad[0]].shape)}")
    ident = ("audio", "audio_checkpoint", "audio_options", "text", "text_path", "text_pooling", "max_tokens")
    saved = {k: v for k, v in ckpt.get("config", {}).get("encoders", {}).items() if k in ident}
    now = {k: v for k, v in to_dict(model.cfg)["encoders"].items() if k in ident} if model.cfg is not None else saved
    if saved and saved != now:  # which blocks train may differ; which encoders run may not, silently
        log.warning("train.init_from=%s was trained with other encoders (%s, now %s)", path, saved, now)
    model.load_state_dict(state, strict=False)


class Trainer:
    def __init__(self, cfg: Config, data: Prepared, out_dir: str | Path | None = None) -> None:
        self.cfg = cfg
        self.data = data
        self.out = Path(out_dir or cfg.train.out_dir)
        torch.manual_seed(cfg.train.seed)
        towers = data.towers if data.towers is not None else False
        self.model = create_model(cfg, data.audio_dim, data.text_dim, towers=towers)
        if cfg.train.init_from:
            init_weights(self.model, cfg.train.init_from)
        self.device = select_device(cfg.train.device)
        check_precision(cfg.train.precision, self.device)
        self.model.to(self.device)
        self.train_view = data.view(cfg.data.train_split)
        self.val_view = data.view(cfg.data.val_split) if cfg.data.val_split in data.splits else None
        self.steps_per_epoch = len(epoch_batches(self.train_view, cfg.train.batch_size, 0, 0))
        self.positive_ids = positive_ids(self.train_view, cfg.train.positives_by)
        groups = self.model.param_groups(cfg.optim.lr, cfg.optim.lr_groups, cfg.optim.layer_decay)
        self.opt = build_optimizer(groups, cfg.optim)
        self.sched = build_scheduler(self.opt, cfg.optim, self.steps_per_epoch, cfg.train.epochs)
        self.live_audio = data.audio is None
        self.live_text = data.text is None
        if (self.live_audio or self.live_text) and data.towers is None:
            raise ConfigError("training from raw audio/text needs the model's towers (prepare(cfg) provides them)")
        if cfg.train.gradient_checkpointing:
            self.model.enable_gradient_checkpointing()
        hook = None
        if cfg.train.spec_augment:
            from soundseek.audio.augment import SpecAugment

            aug = SpecAugment()
            hook = (lambda x, m: aug(x, m)) if _takes_mask(aug) else (lambda x, m: aug(x))
            if self.live_audio:  # on the tower's log-mel spectrogram, in training only
                _spec_augment_frontend(self.model, aug)
        self.targets = None
        if cfg.loss.distill:
            from soundseek.train.distill import Targets

            self.targets = Targets(cfg.loss.distill, self.train_view)
        self.dataset = None
        if self.live_audio or self.live_text:
            from soundseek.audio.augment import WaveAugment
            from soundseek.data.dataset import PairDataset

            v = self.train_view
            self.dataset = PairDataset(
                v.clips, v.captions, v.caption_audio, self.model.sample_rate, data.max_seconds,
                crop_seconds=cfg.train.crop_seconds, train=cfg.train.random_crop,
                augment=WaveAugment(cfg.train.gain_db, cfg.train.shift), load_waves=self.live_audio, seed=cfg.train.seed)
        self.step_module = BatchLoss(self.model, hook)
        if cfg.train.grad_cache and dist.world_size() > 1:
            raise ConfigError("train.grad_cache runs in one process; under torch.distributed every rank already "
                              "sees the global batch's negatives (drop train.grad_cache or train.accumulate)")
        if dist.world_size() > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # buffers (batch-norm statistics) stay per rank; rank 0 writes the checkpoints
            # a trained Hugging Face tower computes outputs the loss never uses (BERT's pooler)
            unused = any(self.model.trained_towers().values())
            self.step_module = DistributedDataParallel(self.step_module, device_ids=ids, forward_sync_buffers=False,
                                                       find_unused_parameters=unused)
        self.scaler = grad_scaler(self.device, cfg.train.precision)
        self.epoch = 0
        self.best = -float("inf")
        self.history: list[dict[str, Any]] = []
        self.hash = config_hash(cfg)

    # -- state ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            **checkpoint_payload(self.model),
            "config_hash": self.hash,
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "epoch": self.epoch,
            "best": self.best,
            "history": self.history,
            "rng": torch.get_rng_state(),
        }

    def try_resume(self) -> bool:
        last = self.out / "last.pt"
        if not last.is_file():
            return False
        ckpt = load_checkpoint(last)
        if ckpt.get("config_hash") != self.hash:
            raise ConfigError(
                f"{last} was written by a different configuration; use another train.out_dir or --restart"
            )
        self.model.load_state_dict(ckpt["model"], strict=False)
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.epoch, self.best, self.history = ckpt["epoch"], ckpt["best"], list(ckpt["history"])
        torch.set_rng_state(ckpt["rng"])
        log.info("resuming %s after epoch %d", self.out, self.epoch)
        return True

    # -- loop -----------------------------------------------------------------------
    def train_step(self, rows: np.ndarray, loaded: dict | None = None) -> float:
        """One optimiser step on the global batch ``rows`` (caption positions of the split).

        Under torch.distributed each rank encodes its contiguous slice of the batch and the
        model's loss gathers the other ranks' clips (with gradients): every rank computes the
        loss of the whole global batch, and DistributedDataParallel averages the gradients, so N
        processes train the same objective as one process. With ``train.accumulate = k`` the
        batch is cut into k micro-batches (each its own negatives) whose gradients add up.
        ``loaded``: this rank's decoded items of the batch (from the DataLoader), if any.
        """
        cfg = self.cfg
        k = cfg.train.accumulate
        self.opt.zero_grad(set_to_none=True)
        if cfg.train.grad_cache:
            total = self._grad_cache_backward([m for m in np.array_split(rows, k) if len(m)])
            return self._optimizer_step(total)
        micro = [rows] if k == 1 else [m for m in np.array_split(rows, k) if len(m) >= 2]
        total = 0.0
        for i, part in enumerate(micro):
            sync = i == len(micro) - 1 or not hasattr(self.step_module, "no_sync")
            with (contextlib.nullcontext() if sync else self.step_module.no_sync()):
                batch = self._batch(part, loaded if len(micro) == 1 else None)
                with autocast(self.device, cfg.train.precision):
                    loss = self.step_module(batch) / len(micro)
                self.scaler.scale(loss.float()).backward()
            total += float(loss.detach())
        return self._optimizer_step(total)

    def _grad_cache_backward(self, micro: list[np.ndarray]) -> float:
        """Gradients of the whole batch's loss, one micro-batch of encoder activations at a time
        (GradCache, Gao et al. 2021). Pass 1 encodes every micro-batch without gradients; the loss
        of the concatenated representations gives their gradients (and those of the loss's own
        parameters); pass 2 encodes each micro-batch again, with the random state of pass 1
        (same dropout and masks), and back-propagates ``sum(rep * grad)``. The gradients equal
        those of one step on the whole batch; only one micro-batch's activations are kept."""
        cfg = self.cfg
        batches, states, texts, audios = [], [], [], []
        with torch.no_grad():
            for part in micro:
                batch = self._batch(part, None)
                states.append(_rng_states(self.device))
                with autocast(self.device, cfg.train.precision):
                    t, a = self.step_module.encode(batch)
                batches.append(batch)
                texts.append(t)
                audios.append(a)
        leaves = [{k: (v.detach().requires_grad_(True) if v.is_floating_point() else v)
                   for k, v in concat_reps(reps).items()} for reps in (texts, audios)]
        ids = torch.cat([b["clip_ids"] for b in batches])
        teacher = self.targets.block(np.concatenate(micro), self.train_view.caption_audio[np.concatenate(micro)]) \
            if self.targets is not None else None
        if teacher is not None:
            teacher = teacher.to(self.device, next(self.model.scorer.parameters()).dtype)
        with autocast(self.device, cfg.train.precision):
            loss = self.model(leaves[0], leaves[1], ids, teacher)
        self.scaler.scale(loss.float()).backward()
        start = 0
        for batch, state, n in zip(batches, states, (len(m) for m in micro)):
            _set_rng_states(self.device, state)
            with autocast(self.device, cfg.train.precision):
                reps = self.step_module.encode(batch)
            terms = []
            for rep, leaf in zip(reps, leaves):
                for key, v in rep.items():
                    g = leaf[key].grad if torch.is_tensor(leaf[key]) and leaf[key].requires_grad else None
                    if g is None or not v.requires_grad:
                        continue
                    g = g[start:start + n][(slice(None),) + tuple(slice(0, d) for d in v.shape[1:])]
                    terms.append((v.float() * g.float()).sum())
            if terms:  # the gradients of the leaves are already scaled by the GradScaler
                torch.stack(terms).sum().backward()
            start += n
        return float(loss.detach())

    def _optimizer_step(self, total: float) -> float:
        cfg = self.cfg
        if cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(self.opt)
        self.scaler.update()
        # fp16: a step whose gradients overflowed is skipped and the scale lowered; the schedule
        # then waits for the next real optimiser step (no "scheduler before optimizer" warning)
        if scale is None or self.scaler.get_scale() >= scale:
            self.sched.step()
        self.model.after_step()
        return total

    def _batch(self, rows: np.ndarray, loaded: dict | None) -> dict[str, Any]:
        """The step's inputs for the global batch ``rows`` on this rank (see ``BatchLoss``)."""
        v = self.train_view
        world, rank = dist.world_size(), dist.rank()
        owners = v.caption_audio[rows]
        local = rows[np.array_split(np.arange(len(rows)), world)[rank]]
        batch: dict[str, Any] = {"clip_ids": torch.as_tensor(self.positive_ids[owners])}
        if self.targets is not None:  # the teachers' (B, B) logits of the global batch
            batch["teacher"] = self.targets.block(rows, owners)
        if (self.live_audio or self.live_text) and loaded is None:
            from soundseek.data.dataset import collate_pairs

            loaded = collate_pairs([self.dataset[int(p)] for p in local])
        if self.live_text:
            batch["captions"] = loaded["captions"]
        else:
            tokens, tmask, sent = self.data.text.batch(v.caption_rows[local])
            if world > 1:  # the shapes one process would see for the global batch
                tokens, tmask = dist.pad_to_global(tokens, tmask)
            batch.update(tokens=tokens, token_mask=tmask, sentence=sent)
        if self.live_audio:
            wave, wmask = loaded["wave"], loaded["wave_mask"]
            if self.cfg.train.mixup > 0:
                from soundseek.audio.augment import mixup_waves

                g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + self.sched.last_epoch)
                wave, wmask = mixup_waves(wave, wmask, self.cfg.train.mixup, generator=g)
            if world > 1:
                wave, wmask = dist.pad_to_global(wave, wmask)
            batch.update(wave=wave, wave_mask=wmask)
        else:
            frames, fmask = self.data.audio.batch(v.clip_rows[v.caption_audio[local]])
            if world > 1:
                frames, fmask = dist.pad_to_global(frames, fmask)
            batch.update(frames=frames, frame_mask=fmask)
        dtype = next(self.model.scorer.parameters()).dtype
        return to_device(batch, self.device, dtype, non_blocking=self.device.type == "cuda")

    def _loader(self, batches: list[np.ndarray]):
        """This rank's decoded items of each batch, from DataLoader workers (live towers)."""
        from torch.utils.data import DataLoader

        from soundseek.data.dataset import ListBatchSampler, collate_pairs

        world, rank = dist.world_size(), dist.rank()
        local = [b[np.array_split(np.arange(len(b)), world)[rank]] for b in batches]
        self.dataset.set_epoch(self.epoch)
        return DataLoader(self.dataset, batch_sampler=ListBatchSampler(local), collate_fn=collate_pairs,
                          num_workers=self.cfg.train.num_workers, pin_memory=self.device.type == "cuda")

    def fit(self, resume: bool = True) -> dict[str, Any]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.try_resume()
        main = dist.is_main()
        if main:
            atomic_write_bytes(self.out / "config.yaml", lambda f: f.write(yaml.safe_dump(to_dict(cfg), sort_keys=False).encode()))
        writer = _tensorboard(self.out) if cfg.train.tensorboard and main else None
        while self.epoch < cfg.train.epochs:
            self.model.train()
            t0 = time.time()
            batches = epoch_batches(self.train_view, cfg.train.batch_size, cfg.train.seed, self.epoch)
            losses = []
            bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{cfg.train.epochs}", disable=not (cfg.train.progress and main), leave=False)
            loader = self._loader(batches) if self.dataset is not None and cfg.train.accumulate == 1 else None
            for rows, loaded in zip(bar, loader if loader is not None else [None] * len(batches)):
                losses.append(self.train_step(rows, loaded))
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            self.epoch += 1
            record: dict[str, Any] = {"epoch": self.epoch, "loss": float(np.mean(losses)), "seconds": time.time() - t0,
                                      "lr": self.sched.get_last_lr()[0]}
            if self.val_view is not None:  # rank 0 evaluates, the others receive its metrics
                m = evaluate(self.model, self.data, cfg.data.val_split, chunk=cfg.eval.chunk) if main else None
                m = dist.broadcast_object(m)
                record["val"] = {"t2a": m["t2a"], "a2t": m["a2t"]}
                record["monitor"] = monitor_value(m, cfg.train.monitor)
            self.history.append(record)
            improved = self.val_view is None or record["monitor"] > self.best
            if improved:
                self.best = record.get("monitor", self.best)
            if dist.is_main():
                if improved:
                    save_checkpoint(self.out / "best.pt", self.state())
                save_checkpoint(self.out / "last.pt", self.state())
                self._log(record, writer)
            dist.barrier()
        if writer is not None:
            writer.close()
        return {"best": self.best, "history": self.history, "out_dir": str(self.out)}

    def _log(self, record: dict[str, Any], writer) -> None:
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        msg = f"epoch {record['epoch']}: loss {record['loss']:.4f}"
        if "val" in record:
            v = record["val"]
            msg += (f"  val T2A R1 {100 * v['t2a']['R1']:.1f}% mAP10 {100 * v['t2a']['mAP10']:.1f}%"
                    f"  A2T R1 {100 * v['a2t']['R1']:.1f}%")
        if self.cfg.train.progress:  # printed once: above the progress bar, or by the logger
            tqdm.write(msg)
            log.debug(msg)
        else:
            log.info(msg)
        if writer is not None:
            writer.add_scalar("train/loss", record["loss"], record["epoch"])
            writer.add_scalar("train/lr", record["lr"], record["epoch"])
            for d, m in record.get("val", {}).items():
                for k, val in m.items():
                    writer.add_scalar(f"val/{d}/{k}", val, record["epoch"])


def _rng_states(device: torch.device) -> tuple:
    """The random state a forward pass draws from (CPU, and the CUDA device's)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_states(device: torch.device, state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _spec_augment_frontend(model, aug) -> None:
    """SpecAugment the audio tower's log-mel output (B, T, M) while the tower trains."""
    tower = model.audio_encoder
    frontend = getattr(tower, "frontend", None)
    if frontend is None:
        raise ConfigError(f"train.spec_augment: {type(tower).__name__} has no log-mel front end to augment")

    def hook(module, args, out):
        return aug(out) if tower.training and out.dim() == 3 else out

    frontend.register_forward_hook(hook)


def _takes_mask(module) -> bool:
    import inspect

    return len(inspect.signature(module.forward).parameters) >= 2


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is an optional extra
        return None
    return SummaryWriter(str(out / "tb"))


def load_run(path: str | Path, towers: bool | tuple = True) -> tuple[RetrievalModel, Config, dict[str, Any]]:
    """(model, recipe, checkpoint dict) of a training run's checkpoint (weights_only loading);
    ``soundseek.models.load_model`` gives the model alone."""
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, towers=towers, where=str(path))
    return model, model.cfg, ckpt
