"""Datasets: the corpus data model, format readers, checks, the synthetic corpus, augmentation.

Example:
    >>> from soundseek.data import load_corpus, check_corpus
    >>> corpus = load_corpus("path/to/clotho")          # format auto-detected
    >>> print(check_corpus(corpus).to_text())
"""
from __future__ import annotations

from soundseek.data.augment import add_extra_captions, load_extra_captions, shuffle_captions
from soundseek.data.check import CheckReport, check_corpus
from soundseek.data.formats import FORMATS, detect_format, load_corpus
from soundseek.data.splits import assign_splits, group_key
from soundseek.data.synthetic import make_synthetic_corpus
from soundseek.data.types import Clip, Corpus, Problem

__all__ = ["Clip", "Corpus", "Problem", "FORMATS", "load_corpus", "detect_format", "check_corpus", "CheckReport",
           "make_synthetic_corpus", "load_extra_captions", "add_extra_captions", "shuffle_captions",
           "assign_splits", "group_key"]
