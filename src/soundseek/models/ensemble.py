"""Join separately trained checkpoints into one ensemble checkpoint (``soundseek ensemble``),
and take one member back out of an ensemble (``soundseek ensemble --member K``).

The members must share their frozen towers (the same ``encoders`` recipe and feature widths) and
be global cosine scorers; the result is a model whose scorer is
:class:`soundseek.scoring.ensemble.EnsembleScorer`: it encodes, indexes and searches like any
other model, and scores a pair by the mean of the members' cosines.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from soundseek.config import ConfigError, from_dict, to_dict
from soundseek.models.checkpoint import load_checkpoint, save_checkpoint
from soundseek.models.config import Config
from soundseek.models.retrieval import RetrievalModel


def ensemble_payload(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The checkpoint dict of the ensemble of ``paths`` (soundseek checkpoints, 2 or more)."""
    if len(paths) < 2:
        raise ConfigError("an ensemble needs at least 2 checkpoints")
    ckpts = [load_checkpoint(p) for p in paths]
    first = ckpts[0]
    base = to_dict(from_dict(Config, first["config"]))
    members, state = [], {}
    for i, (path, ck) in enumerate(zip(paths, ckpts)):
        cfg = to_dict(from_dict(Config, ck["config"]))
        if any(t.get("trained") for t in ck.get("towers", {}).values()):
            raise ConfigError(f"{path}: a member with trained towers cannot share the ensemble's towers; "
                              "ensemble checkpoints whose towers are frozen")
        sources = {n: t.get("source") for n, t in ck.get("towers", {}).items()}
        if (cfg["encoders"] != base["encoders"] or sources != {n: t.get("source") for n, t in first.get("towers", {}).items()}
                or (ck["audio_dim"], ck["text_dim"]) != (first["audio_dim"], first["text_dim"])):
            raise ConfigError(f"{path}: its encoders (recipe or weights) differ from those of {paths[0]}; "
                              "members must share their towers")
        if cfg["model"]["scorer"] != "global":
            raise ConfigError(f"{path}: scorer {cfg['model']['scorer']!r}; only global scorers can be ensembled")
        members.append({"scorer": "global", "embed_dim": int(cfg["model"]["embed_dim"]),
                        "options": dict(cfg["model"]["options"])})
        for k, v in ck["model"].items():
            if k.startswith("scorer."):
                state[f"scorer.members.{i}.{k[len('scorer.'):]}"] = v
            elif k.startswith("loss.") and i == 0:
                state[k] = v
    base["model"] = {**base["model"], "scorer": "ensemble", "embed_dim": sum(m["embed_dim"] for m in members),
                     "options": {"members": members}}
    base["loss"] = {**base["loss"], "distill": ""}
    return {"config": base, "audio_dim": first["audio_dim"], "text_dim": first["text_dim"], "model": state,
            "towers": first.get("towers", {}), "members": [str(p) for p in paths]}


def fit_projection(vectors: "torch.Tensor", width: int) -> "torch.Tensor":
    """(width, D) matrix with orthonormal rows: the ``width`` leading right singular vectors of
    ``vectors`` (N, D), uncentred, so that ``P^T P`` keeps the directions that carry most of
    their inner products. Fit it on training clips' and captions' concatenated vectors stacked
    together (both sides of every score), never on test data."""
    import torch

    x = torch.as_tensor(vectors, dtype=torch.float64)
    if x.ndim != 2 or not 0 < int(width) <= min(x.shape):
        raise ValueError(f"fit_projection needs (N, D) vectors with N, D >= width, got {tuple(x.shape)} for width {width}")
    if not torch.isfinite(x).all():
        raise ValueError("fit_projection: the vectors have NaN or infinite values")
    # eigenvectors of the (D, D) second-moment matrix: the right singular vectors of x
    vals, vecs = torch.linalg.eigh(x.T @ x)
    top = vecs[:, torch.argsort(vals, descending=True)[: int(width)]]
    return top.T.contiguous().float()


def project_payload(payload: dict[str, Any], projection: "torch.Tensor") -> dict[str, Any]:
    """The ensemble checkpoint dict ``payload`` with its vectors projected by ``projection``
    ((p, sum_k d_k), from :func:`fit_projection`): p-wide vectors, the same members."""
    cfg = payload["config"]
    model = dict(cfg["model"])
    if model.get("scorer") != "ensemble":
        raise ConfigError("only an ensemble's vectors can be projected")
    width, total = (int(n) for n in projection.shape)
    opts = {**model["options"], "project": width}
    out = {**payload, "config": {**cfg, "model": {**model, "embed_dim": width, "options": opts}},
           "model": {**payload["model"], "scorer.projection": projection.detach().float().contiguous()}}
    if total != sum(int(m["embed_dim"]) for m in opts["members"]):
        raise ConfigError(f"a projection of {total}-d vectors does not fit this ensemble")
    return out


def combine(paths: Sequence[str | Path], out: str | Path) -> RetrievalModel:
    """Write the ensemble of ``paths`` to ``out`` (atomically) and return it (heads only); the
    ensemble is built, so checked against its recipe, before anything is written."""
    return write(ensemble_payload(paths), out)


def member_payload(path: str | Path, k: int) -> dict[str, Any]:
    """The checkpoint dict of member ``k`` of the ensemble checkpoint ``path``: the member's own
    heads on the shared towers, so its vectors are the ensemble's k-th slice times ``sqrt(K)``
    (a K-times narrower index, one member's quality)."""
    ck = load_checkpoint(path)
    cfg = to_dict(from_dict(Config, ck["config"]))
    if cfg["model"]["scorer"] != "ensemble":
        raise ConfigError(f"{path}: scorer {cfg['model']['scorer']!r}, not an ensemble; --member takes an "
                          "ensemble checkpoint (written by `soundseek ensemble`)")
    members = list(cfg["model"]["options"].get("members") or [])
    if not 0 <= k < len(members):
        raise ConfigError(f"{path} has members 0..{len(members) - 1}, got --member {k}")
    m = members[k]
    cfg["model"] = {**cfg["model"], "scorer": m.get("scorer", "global"), "embed_dim": int(m["embed_dim"]),
                    "options": dict(m.get("options") or {})}
    prefix = f"scorer.members.{k}."
    state = {"scorer." + n[len(prefix):]: v for n, v in ck["model"].items() if n.startswith(prefix)}
    # the loss state (e.g. a learnt temperature; unused for search) is member 0's, the only one kept
    state.update({n: v for n, v in ck["model"].items() if n.startswith("loss.")})
    out = {"config": cfg, "audio_dim": ck["audio_dim"], "text_dim": ck["text_dim"], "model": state,
           "towers": ck.get("towers", {})}
    if ck.get("members"):
        out["member_of"] = {"ensemble": str(path), "member": k, "trained_as": str(ck["members"][k])}
    return out


def extract(path: str | Path, k: int, out: str | Path) -> RetrievalModel:
    """Write member ``k`` of the ensemble ``path`` to ``out`` (atomically, after building it) and return it."""
    return write(member_payload(path, k), out)


def write(payload: dict[str, Any], out: str | Path) -> RetrievalModel:
    """Build the heads of ``payload`` (checked against its recipe), then write it atomically."""
    from soundseek.models.factory import model_from_checkpoint

    model = model_from_checkpoint({**payload, "version": 2}, towers=False, where=str(out))
    save_checkpoint(out, payload)
    return model
