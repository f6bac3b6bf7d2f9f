"""soundseek.words.split_words: the one splitter of names, against the two splitters it replaced
(the text index's path/query words and the caption builder's label words), kept here verbatim."""
from __future__ import annotations

import random
import re

import pytest

from soundseek.index.metadata import path_words
from soundseek.index.textindex import query_terms
from soundseek.words import STYLES, split_words

# -- the two former copies, verbatim (the references) -------------------------------------------
_CAMEL_INDEX = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")
_SPLIT_INDEX = re.compile(r"[\s_\-.,;:+()\[\]{}#&]+")
_CAMEL_CAPTION = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_SEP_CAPTION = re.compile(r"[\s_\-.+~,;:'\"()\[\]{}!?#&=@]+")


def old_index_words(s: str) -> str:  # index/metadata._words
    return " ".join(w for w in (_CAMEL_INDEX.sub(" ", x) for x in _SPLIT_INDEX.split(s)) if w).lower()


def old_caption_words(text: str) -> list[str]:  # data/debian_captions.split_words
    parts = []
    for chunk in _SEP_CAPTION.split(text):
        if chunk:
            parts.extend(p.lower() for p in _CAMEL_CAPTION.split(chunk) if p)
    return parts


TRICKY = [
    "", "   ", "___", "DOORWood_CreakSlow_01", "HCBeginLevel_v2", "shot-Primary.big_01", "iPhoneXSMax",
    "ABCDef", "ABC", "a1b2c3", "mp3", "v2.0.1", "don't", "what?!", "a=b@c~d", "x'y\"z", "été_Écho-Straße",
    "İstanbul", "ǅungla", "ΣΊΣΥΦΟΣ_café", "水の音01", "Arabic٣digits", "x²y", "snake_case_name", "kebab-case-name",
    "dot.separated.name", "Mixed UPPER lower", "tab\tand\nnewline", "\x1cfile\x1fsep", "name\udce9escaped",
    "na\\xefve", "%C3%A9t%C3%A9", "trailing-", "-leading", "(parens)[brackets]{braces}#hash&amp;", "a+b;c:d,e",
    "12345", "UPPERCASE123lower", "zero\u200bwidth", "nbsp\u00a0space", "emoji🔊sound",
]


@pytest.mark.parametrize("name", TRICKY)
def test_each_style_splits_as_the_copy_it_replaced(name):
    assert " ".join(split_words(name, "index")) == old_index_words(name)
    assert split_words(name, "caption") == old_caption_words(name)


def test_random_names_split_as_before():
    rng = random.Random(0)
    alphabet = "aZbY09_-. ,;:+()[]{}#&~'\"!?=@\t٣éÉß水🔊\u00a0" + "\udce9"
    for _ in range(3000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert " ".join(split_words(name, "index")) == old_index_words(name), repr(name)
        assert split_words(name, "caption") == old_caption_words(name), repr(name)


def test_the_styles_differ_where_they_always_did():
    assert split_words("don't=stop", "index") == ["don't=stop"]
    assert split_words("don't=stop", "caption") == ["don", "t", "stop"]
    assert split_words("a٣", "index") == ["a٣"] and split_words("a٣", "caption") == ["a", "٣"]


def test_callers_use_the_index_style():
    assert path_words("Foley/__/DOORWood_CreakSlow_01.wav") == ("door wood creak slow 01 doors wood", "foley ")
    assert query_terms("DoorCreak01") == ["door", "creak", "01"]


def test_unknown_style_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Valid: caption, index"):
        split_words("x", "path")
    assert sorted(STYLES) == ["caption", "index"]
