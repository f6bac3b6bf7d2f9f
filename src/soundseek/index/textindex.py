"""Full-text index of each file's words beside the vectors: SQLite FTS5 with BM25 ranking.

One row per item (``rowid`` = item id) in the index's own ``index.sqlite``, written in the
same transaction as the item's vector, so text and vectors never disagree. Columns:

=========  ====================================================  ============
column     what                                                  BM25 weight
=========  ====================================================  ============
name       file-name words (CamelCase/snake_case split, UCS)      3
folder     folder words                                          1
labels     captions and tags given by a manifest/corpus          2
tags       embedded metadata: Vorbis/ID3/INFO/bext/iXML values    2
=========  ====================================================  ============

Tokenizer ``porter unicode61 remove_diacritics 2``: case- and accent-insensitive, English
stemming ("barking" matches "bark"). Names, folders and labels are indexed with the words of
:mod:`.vocab` added (run-together names split, abbreviations and synonyms followed by their
canonical words: ``wardrums`` -> war drums, ``bd_808`` -> bass drum).

A query is split the same way into words, each matching itself or what it stands for
(quoted, so no user text is ever read as FTS5 syntax). Words are weighted by how much they
say: IDF over the index, a generic modifier (:data:`.vocab.GENERIC`: small, heavy, loud, ...)
a quarter of that. A text hit must match at least one content word (not only a modifier);
hits are ranked by ``coverage`` (the weighted share of the query's words they match), then
BM25. A hit is ``exact`` when its file name says the query's content words and no other, and no
generic modifier the query lacks (read through the vocabulary; numbers and stop words aside):
``door_03.wav`` for "door" or "a heavy door" but not ``door_big.wav`` for "door",
``bd_808.flac`` for "bass drum"; hybrid search ranks exact names first (:func:`.hybrid.fuse`). Hybrid fusion scales a hit's text rank term by its coverage (:func:`.hybrid.fuse`).

An index written before this vocabulary (``state`` ``text_version`` < :data:`TEXT_VERSION`)
has its name, folder and label words rewritten once when it is opened for writing
(:func:`migrate`); a read-only one keeps working with the old words.
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from ..words import split_words
from . import vocab
from .metadata import path_words
from .store import fts
from .store.fts import SCHEMA, delete, has_text, ids_with_text, put  # noqa: F401

__all__ = ["ensure_schema", "put", "delete", "has_text", "search", "item_columns", "TextHit", "COLUMNS",
           "query_terms", "migrate", "TEXT_VERSION"]
TEXT_VERSION = 2
GENERIC_WEIGHT = 0.25

COLUMNS = ("name", "folder", "labels", "tags")
WEIGHTS = (3.0, 1.0, 2.0, 2.0)
# Words too common to carry meaning in a sound description (kept out of the OR query).
STOPWORDS = frozenset("a an and are as at be by for from in into is it of on or the to with sound sounds".split())
# Embedded fields that describe the encoding, not the sound.
TECHNICAL_FIELDS = frozenset({"encoder", "software", "encoded_by", "encoding", "date", "tracknumber", "vendor"})
_TOKEN = re.compile(r"\w+", re.UNICODE)
_MARK = re.compile("\x02(.*?)\x03", re.S)


@dataclass
class TextHit:
    id: int
    score: float  # -bm25: higher is better
    matched: list[str]  # the words of the item's text that matched, as written there
    coverage: float = 1.0  # weighted share of the query's words the item matches (0..1]
    exact: bool = False  # the file name says the query's content words and nothing else


def _word_key(w: str) -> str:
    """A crude suffix fold for comparing word sets ("doors" = "door", "barking" = "bark")."""
    for suf, keep in (("ing", 5), ("ed", 4), ("s", 4)):
        if len(w) >= keep + len(suf) - 1 and w.endswith(suf) and not w.endswith("ss"):
            return w[: -len(suf)]
    return w


def content_words(words) -> tuple[frozenset[str], frozenset[str]]:
    """(content words, generic modifiers) of a word list, each distinct: abbreviations and
    synonyms read as their canonical words (``bd`` -> bass, drum), run-together words split;
    numbers and stop words left out."""
    out, generic = set(), set()
    for w in words:
        w = w.lower()
        if w.isdigit() or w in STOPWORDS:
            continue
        c = vocab.canonical(w)
        for p in c.split() if c else (vocab.split_compound(w) if w.isalpha() else (w,)):
            if p in vocab.GENERIC:
                generic.add(p)
            elif p not in STOPWORDS:
                out.add(_word_key(p))
    return frozenset(out), frozenset(generic)


def ensure_schema(con: sqlite3.Connection) -> None:
    if not fts.exists(con):
        fts.create(con)
        fts.set_text_version(con, TEXT_VERSION)


def _expanded(text: str) -> str:
    """``text`` followed by the vocabulary words it implies (nothing added when none)."""
    words = vocab.tokens(text)
    extra = [w for w in vocab.expand_words(words) if w not in words]
    return text + (" | " + " ".join(dict.fromkeys(extra)) if extra else "")


def item_columns(key: str, captions: list[str], tags: list[str], embedded: dict[str, str]) -> tuple[str, ...]:
    """The four column texts of one item (names, folders and labels with their vocabulary words)."""
    name, folder = path_words(key)
    labels = " | ".join([*map(str, captions), *map(str, tags)])
    return (_expanded(name), _expanded(folder), _expanded(labels) if labels else labels,
            " | ".join(str(v) for k, v in embedded.items() if k not in TECHNICAL_FIELDS))


def needs_migration(con: sqlite3.Connection) -> bool:
    """True when the index's words were written by an older :data:`TEXT_VERSION`."""
    if not fts.exists(con):
        return False
    version = fts.text_version(con)
    return version is None or int(version) < TEXT_VERSION


def migrate(con: sqlite3.Connection) -> int:
    """Rewrite the name/folder/label words of an index written by an older :data:`TEXT_VERSION`
    (embedded tags kept); returns the rows rewritten. The caller commits."""
    if not needs_migration(con):
        return 0
    n = 0
    import json

    for item_id, key, caps, tags, embedded in fts.labelled_items(con):
        name, folder, labels, _ = item_columns(key, json.loads(caps), json.loads(tags), {})
        fts.set_words(con, item_id, name, folder, labels)
        n += 1
    fts.set_text_version(con, TEXT_VERSION)
    return n


def query_terms(query: str) -> list[str]:
    """Lower-cased words of ``query`` minus stop words (all words if only stop words);
    run-together words split, CamelCase and digits separated (``DoorCreak01`` -> door, creak, 01)."""
    words = []
    for w in split_words(" ".join(_TOKEN.findall(query)), "index"):
        parts = vocab.split_compound(w) if w.isalpha() else (w,)
        words.extend(parts)
    kept = [w for w in words if w not in STOPWORDS]
    return list(dict.fromkeys(kept or words))


def _quote(s: str) -> str:
    return '"%s"' % s.replace('"', '""')


def _group(term: str) -> str:
    """FTS5 expression of one query word: itself or its canonical phrase (``bd`` -> "bd" OR "bass drum")."""
    alts = [_quote(term)]
    c = vocab.canonical(term)
    if c:
        alts.append(_quote(c))
    return "(" + " OR ".join(alts) + ")" if len(alts) > 1 else alts[0]


def search(con: sqlite3.Connection, query: str, limit: int,
           filt: tuple[str, list] | None = None) -> list[TextHit]:
    """Items matching a content word of ``query`` (see the module docstring), best coverage then
    BM25 first (at most ``limit``); ``filt``: an SQL condition on ``items`` and its parameters
    (:func:`.filters.where_sql`) the items must pass."""
    import math

    terms = query_terms(query)
    if not terms or not fts.exists(con):
        return []
    n_docs = max(1, fts.doc_count(con))
    weight, ids = {}, {}
    asked = content_words(terms)
    for t in terms:
        got = fts.matching(con, _group(t), filt)
        df = fts.doc_freq(con, _group(t))
        idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
        weight[t] = idf * (GENERIC_WEIGHT if t in vocab.GENERIC else 1.0)
        ids[t] = got
    content = [t for t in terms if t not in vocab.GENERIC] or terms
    total = sum(weight.values()) or 1.0
    match = " OR ".join(_group(t) for t in content)
    rows = fts.ranked(con, match, WEIGHTS, filt, 20000)
    out = []
    for row in rows:
        seen: dict[str, None] = {}
        for text in row[2:]:
            for w in _MARK.findall(text or ""):
                seen.setdefault(w.lower(), None)
        cov = sum(weight[t] for t in terms if row[0] in ids[t]) / total
        name = _MARK.sub(r"\1", row[2] or "").split(" | ", 1)[0]  # the name's own words, not the added ones
        has, has_generic = content_words(vocab.tokens(name))
        exact = bool(asked[0]) and has == asked[0] and has_generic <= asked[1]
        out.append(TextHit(int(row[0]), -float(row[1]), list(seen), round(min(1.0, cov), 6), exact))
    out.sort(key=lambda h: (-h.coverage, -h.score, h.id))
    return out[:int(limit)]
