"""Names split into lowercase words: file names and folders for the text index and its queries
(``index``), labels and file names turned into training captions (``caption``).

The two styles differ only in what separates words, and they stay apart on purpose: the words
an index stores for a path, and the words of a query, must split as they did when the index was
built, while captions also break at quotes, ``~ ! ? = @`` and at any Unicode decimal digit.
"""
from __future__ import annotations

import re

__all__ = ["STYLES", "split_words"]

# Boundaries inside a chunk: lower->Upper (doorCreak), ACRONYM->Word (HCBegin), letter<->digit.
_BOUNDARY = r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?={d})|(?<={d})(?=[A-Za-z])"

STYLES: dict[str, tuple[re.Pattern, re.Pattern]] = {  # style -> (separators, boundaries)
    "index": (re.compile(r"[\s_\-.,;:+()\[\]{}#&]+"), re.compile(_BOUNDARY.format(d="[0-9]"))),
    "caption": (re.compile(r"[\s_\-.+~,;:'\"()\[\]{}!?#&=@]+"), re.compile(_BOUNDARY.format(d=r"\d"))),
}


def split_words(text: str, style: str) -> list[str]:
    """Lowercase words of ``text``: split at separators (spaces, ``_ - .`` and the punctuation
    of ``style``), camelCase and ACRONYMWord boundaries, and letter/digit boundaries.

    Example: ``split_words("HCBeginLevel_v2", "caption")`` -> ``["hc", "begin", "level", "v", "2"]``.

    Raises:
        ValueError: unknown ``style`` (the valid ones are listed).
    """
    try:
        sep, boundary = STYLES[style]
    except KeyError:
        raise ValueError(f"Invalid word style {style!r}. Valid: {', '.join(sorted(STYLES))}") from None
    return [p.lower() for chunk in sep.split(text) if chunk for p in boundary.split(chunk) if p]
