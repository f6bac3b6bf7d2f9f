"""Caption-set analysis (METHODS.md section 9): lexical richness measures and plots."""
from __future__ import annotations

from soundseek.analysis.lexical import (
    caption_measures,
    lexical_report,
    mtld,
    read_captions,
    tokenize,
    ttr,
    vocabulary_size,
)
from soundseek.analysis.plots import analyze_caption_files, compare_plots

__all__ = [
    "analyze_caption_files",
    "caption_measures",
    "compare_plots",
    "lexical_report",
    "mtld",
    "read_captions",
    "tokenize",
    "ttr",
    "vocabulary_size",
]
