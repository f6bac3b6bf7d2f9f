"""Hybrid search: the vector ranking and the full-text (BM25) ranking of a text query,
combined by weighted reciprocal-rank fusion (Cormack et al., SIGIR 2009)::

    fused(item) = (1 - w) / (RRF_K + rank_semantic) + w / (RRF_K + rank_text)

with ranks starting at 1, a term dropped when the item is absent from that list, the text
term multiplied by the hit's coverage of the query's words (:mod:`.textindex`: a file matching
only "splash" of "water splash" gets part of the text term), ``RRF_K``
= 60 (the paper's constant) and one weight ``w`` = ``TEXT_WEIGHT`` = 0.7 (``text_weight``
overrides it). 0.7 was chosen on real-sfx-dev (docs/results.md): where the names describe the
sounds, equal weights (0.5) let semantic near-misses push exact word matches down (R@1 76 %
vs 82 % at 0.7); where the names say nothing, no text matches and every weight gives the
semantic ranking. A word a library's authors wrote into a name or tag is strong evidence.

Files whose name says exactly the query's content words (``exact`` in :mod:`.textindex`:
``door_03.wav`` for "door") come first, ordered among themselves by the fused score: rank
fusion alone lets a semantic neighbour ("door creak") reorder the exact names, which a user
who typed a library's own name expects at the top.

Ranks are taken within the union of the two candidate lists (each max(100, 4k) long), where
every item's semantic score is computed exactly, so a text match that the vector search
ranked low still gets its true score (ranks beyond the candidate lists are approximate).

Modes: ``semantic`` (vectors only), ``text`` (BM25 only), ``hybrid`` (fusion; the default
when the index has words to search, see :func:`resolve_mode`).
"""
from __future__ import annotations

MODES = ("semantic", "text", "hybrid")
RRF_K = 60
TEXT_WEIGHT = 0.7

__all__ = ["MODES", "RRF_K", "TEXT_WEIGHT", "resolve_mode", "fuse"]


def resolve_mode(mode: str | None, has_text: bool) -> str:
    """``None``/``"auto"`` -> hybrid if the index has text else semantic; unknown names raise."""
    if mode in (None, "", "auto"):
        return "hybrid" if has_text else "semantic"
    if mode not in MODES:
        raise ValueError(f"Invalid search mode {mode!r}. Valid: {', '.join(MODES)}")
    return mode


def fuse(semantic: dict[int, float], text: dict[int, float], weight: float = TEXT_WEIGHT,
         coverage: dict[int, float] | None = None,
         first: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, float, int | None, int | None]]:
    """item -> semantic score, item -> text score (text matches only, higher better; ranked in
    this order), optional item -> coverage in [0, 1] scaling the text term, optional items
    ranked ahead of all others (files named exactly what was asked for) ->
    [(item, fused score, semantic rank, text rank)] best first (ties: better semantic score)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"text_weight must be in [0, 1], got {weight}")
    sem_rank = {i: r for r, i in enumerate(sorted(semantic, key=lambda i: -semantic[i]), 1)}
    txt_rank = {i: r for r, i in enumerate(sorted(text, key=lambda i: -text[i]), 1)}
    out = []
    for i in set(sem_rank) | set(txt_rank):
        f = 0.0
        if i in sem_rank:
            f += (1.0 - weight) / (RRF_K + sem_rank[i])
        if i in txt_rank:
            f += weight * (1.0 if coverage is None else coverage.get(i, 1.0)) / (RRF_K + txt_rank[i])
        out.append((i, f, sem_rank.get(i), txt_rank.get(i)))
    out.sort(key=lambda t: (t[0] not in first, -t[1], -semantic.get(t[0], float("-inf")), t[0]))
    return out
