"""Evaluation on cached features: all-pairs scores, both directions' metrics (METHODS §9),
optional Sinkhorn-Knopp A2T correction (§5) and OT-plan retrieval (§8)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from soundseek.models.retrieval import RetrievalModel
from soundseek.train.data import Prepared, SplitView

METRIC_KEYS = ("R1", "R5", "R10", "R50", "mAP10", "medR", "meanR")


def _to(t: torch.Tensor, dev: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dev, dtype) if t.is_floating_point() else t.to(dev)


@torch.no_grad()
def encode_view(model: RetrievalModel, data: Prepared, view: SplitView, batch: int = 256):
    """Per-caption and per-clip representations of one split (dicts of tensors)."""
    model.eval()
    p = next(model.scorer.parameters())
    dev, dtype = p.device, p.dtype
    texts, audios = [], []
    for s in range(0, view.n_captions, batch):
        if data.text is None:  # the text tower runs live
            texts.append(model.encode_captions(view.captions[s: s + batch]))
            continue
        tokens, tmask, sent = (_to(t, dev, dtype) for t in data.text.batch(view.caption_rows[s : s + batch]))
        texts.append(model.encode_text(tokens, tmask, sent))
    if data.audio is None:  # the audio tower runs live on each clip's first max_seconds
        from soundseek.audio.io import AudioDecodeError, batch_waves, load_audio

        sr = model.sample_rate
        for s in range(0, view.n_clips, 8):
            waves = []
            for c in view.clips[s: s + 8]:
                try:
                    waves.append(load_audio(c.audio, sr, max_seconds=data.max_seconds))
                except AudioDecodeError:
                    waves.append(np.zeros(sr, np.float32))  # keeps the split's shape; ranks last
            x, m = batch_waves(waves)
            audios.append(model.encode_waves(x.to(dev), m.to(dev)))
        return model.scorer.cat_reps(texts), model.scorer.cat_reps(audios)
    for s in range(0, view.n_clips, batch):
        frames, fmask = (_to(t, dev, dtype) for t in data.audio.batch(view.clip_rows[s : s + batch]))
        audios.append(model.encode_audio(frames, fmask))
    return model.scorer.cat_reps(texts), model.scorer.cat_reps(audios)


@torch.no_grad()
def score_view(model: RetrievalModel, data: Prepared, view: SplitView, chunk: int = 256) -> torch.Tensor:
    """(n_captions, n_clips) scores of every caption against every clip of the split."""
    text, audio = encode_view(model, data, view)
    return model.score(text, audio, chunk=chunk).float()


def random_baseline(view: SplitView, seed: int = 0) -> dict[str, dict[str, float]]:
    from soundseek import metrics

    g = np.random.default_rng(seed)
    s = g.standard_normal((view.n_captions, view.n_clips))
    return {"t2a": metrics.t2a(s, view.caption_audio), "a2t": metrics.a2t(s.T, view.caption_audio)}


@torch.no_grad()
def evaluate(
    model: RetrievalModel,
    data: Prepared,
    split: str,
    chunk: int = 256,
    sk: bool = False,
    sk_iter: int = 10,
    sk_tau: float = 0.0,
    sk_split: str = "train",
    ot: bool = False,
    ot_reg: float = 0.03,
    return_bias: bool = False,
) -> dict[str, Any]:
    """Metrics of ``split``: {"t2a": {...}, "a2t": {...}, optionally "a2t_sk", "t2a_ot", "a2t_ot", "modality_gap"}."""
    from soundseek import metrics

    view = data.view(split)
    text, audio = encode_view(model, data, view)
    scores = model.score(text, audio, chunk=chunk).float()  # (n_captions, n_clips)
    out: dict[str, Any] = {
        "t2a": metrics.t2a(scores, view.caption_audio),
        "a2t": metrics.a2t(scores.T, view.caption_audio),
        "n_clips": view.n_clips,
        "n_captions": view.n_captions,
    }
    if "emb" in text and "emb" in audio:
        out["modality_gap"] = float(metrics.modality_gap(audio["emb"], text["emb"]))
    if sk:
        from soundseek.scoring.sk import apply_bias, sk_bias

        tau = sk_tau or model.temperature()
        train = data.view(sk_split)
        _, train_audio = encode_view(model, data, train)
        ref = model.score(text, train_audio, chunk=chunk).float().T  # (G train clips, J test captions)
        beta = sk_bias(ref, tau, n_iter=sk_iter)
        out["a2t_sk"] = metrics.a2t(apply_bias(scores.T, beta, tau), view.caption_audio)
        out["sk_tau"] = tau
        if return_bias:
            out["sk_bias"] = beta  # (n_captions,) tensor, in the split's caption order
    if ot:
        from soundseek.ot import plan_scores

        cost = model.ot_cost(scores.double())  # the scorer's own cost, never guessed from the score range
        out["t2a_ot"] = metrics.t2a(plan_scores(cost, ot_reg), view.caption_audio)
        out["a2t_ot"] = metrics.a2t(plan_scores(cost.T.contiguous(), ot_reg), view.caption_audio)
    return out


def format_table(results: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    """A markdown table of every direction's metrics (percent for recalls/mAP)."""
    rows = [(k, v) for k, v in results.items() if isinstance(v, dict) and "R1" in v]
    if baseline:
        rows += [(f"{k} (random)", v) for k, v in baseline.items()]
    head = "| direction | " + " | ".join(METRIC_KEYS) + " |"
    lines = [head, "|" + "---|" * (len(METRIC_KEYS) + 1)]
    for name, m in rows:
        cells = [f"{100 * m[k]:.1f}" if k not in ("medR", "meanR") else f"{m[k]:.1f}" for k in METRIC_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@torch.no_grad()
def zero_shot(model: RetrievalModel, data: Prepared, text_encoder, split: str = "all",
              template: str = "this is a sound of {label}", label_key: str = "category") -> dict[str, Any]:
    """Zero-shot classification (METHODS §9, ESC-50 style): each clip is scored against one
    prompt per class label; top-1 accuracy and mAP per fold (``clip.meta['fold']``) and overall."""
    from soundseek import metrics

    view = data.view(split)
    labels = sorted({str(c.meta.get(label_key, c.captions[0] if c.captions else "")) for c in view.clips})
    if len(labels) < 2:
        raise ValueError(f"zero-shot needs clips with at least two distinct meta[{label_key!r}] labels")
    prompts = [template.format(label=l.replace("_", " ")) for l in labels]
    feats = text_encoder(prompts)
    text = model.encode_text(feats.tokens, feats.mask, feats.sentence)
    _, audio = encode_view(model, data, view)
    scores = model.score(text, audio).float().T  # (n_clips, n_classes)
    targets = np.array([labels.index(str(c.meta.get(label_key, c.captions[0]))) for c in view.clips])
    folds = [c.meta.get("fold") for c in view.clips]
    return metrics.zero_shot(scores, targets, folds=None if any(f is None for f in folds) else np.array(folds))


def relevance_table(view: SplitView, path: str) -> np.ndarray:
    """(n_captions, n_clips) boolean relevance of a split (METHODS §9, multi-positive variant).

    ``path`` is a CSV with a header and the columns ``caption,clip``: every row marks clip
    ``clip`` (a clip id of the corpus, e.g. a Clotho file name) relevant to every query whose
    caption text is ``caption``. Each caption's own clip is always relevant. Rows naming clips
    outside the split are ignored; a file without those columns is an error.
    """
    import csv

    rel = np.zeros((view.n_captions, view.n_clips), dtype=bool)
    rel[np.arange(view.n_captions), view.caption_audio] = True
    col = {c.id: j for j, c in enumerate(view.clips)}
    by_text: dict[str, list[int]] = {}
    for i, t in enumerate(view.captions):
        by_text.setdefault(t.strip(), []).append(i)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"caption", "clip"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: a relevance table needs the columns caption,clip (got {reader.fieldnames})")
        for row in reader:
            j = col.get(row["clip"])
            if j is not None:
                rel[by_text.get(row["caption"].strip(), []), j] = True
    return rel
