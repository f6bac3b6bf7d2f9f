"""Sound-effects vocabulary for word matching (:mod:`.textindex`): abbreviations and synonyms,
generic modifiers, and the splitting of run-together names.

Used on both sides: an indexed name or tag gets the canonical words of its abbreviations and
synonyms appended (``bd_808`` is indexed as ``bd 808 bass drum``), and a query word matches its
canonical form too (``swoosh`` finds files named ``whoosh``). The table (also in
docs/vocabulary.md) — each row: the canonical words, then what else means the same:

Drums and music: ``bass drum`` <- bd, kick, kik, bassdrum; ``snare`` <- sn, snr, sd;
``hi hat`` <- hh, hihat, hat; ``cymbal`` <- cym, cymb; ``percussion`` <- perc; ``guitar`` <- gtr,
guit; ``electric`` <- elec; ``synthesizer`` <- synth; ``vocal`` <- vox, vocals; ``loop`` <- lp.

Sound-effects words: ``ambience`` <- amb, ambi, ambient, ambiance, atmos, atmo, atmosphere,
roomtone; ``footsteps`` <- ftstp, ftstps, footstep, steps; ``whoosh`` <- whsh, swsh, swoosh,
woosh, swish; ``explosion`` <- expl, explo, boom, blast; ``impact`` <- imp, hit; ``door`` <-
doors; ``vehicle`` <- veh, car; ``weapon`` <- wpn, weap; ``gun`` <- guns, gunshot; ``mechanical``
<- mech; ``machine`` <- mach; ``metal`` <- metl, metallic; ``water`` <- watr, wtr; ``wood`` <-
wd, wooden; ``glass`` <- glas; ``crowd`` <- crwd; ``creature`` <- crea, monster; ``voice`` <- vo;
``user interface`` <- ui, gui; ``laser`` <- lasr; ``designed`` <- dsgn; ``foley`` <- foly;
``animal`` <- anml, animals; ``bird`` <- birds; ``effects`` <- fx, sfx; ``alarm`` <- alrm;
``destruction`` <- dest; ``electricity`` <- zap; ``magic`` <- magc; ``weather`` <- wthr.

UCS (Universal Category System) CatIDs such as ``DOOR``, ``WATR``, ``AMB`` are expanded from the
category table of :data:`.metadata.UCS_CATEGORIES` as well.

Generic modifiers (:data:`GENERIC`: small, big, heavy, light, short, long, loud, soft, ...)
count for little in a query: a file must match one of the query's content words to be a text
hit, so "a small dog barking" no longer returns every ``orc-small-hit``.
"""
from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["SYNONYMS", "GENERIC", "WORDS", "canonical", "expand_words", "split_compound"]

# canonical phrase -> words that mean the same (lower case)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "bass drum": ("bd", "kick", "kik", "bassdrum"),
    "snare": ("sn", "snr", "sd"),
    "hi hat": ("hh", "hihat", "hat"),
    "cymbal": ("cym", "cymb"),
    "percussion": ("perc",),
    "guitar": ("gtr", "guit"),
    "electric": ("elec",),
    "synthesizer": ("synth",),
    "vocal": ("vox", "vocals"),
    "loop": ("lp",),
    "ambience": ("amb", "ambi", "ambient", "ambiance", "atmos", "atmo", "atmosphere", "roomtone"),
    "footsteps": ("ftstp", "ftstps", "footstep", "steps"),
    "whoosh": ("whsh", "swsh", "swoosh", "woosh", "swish"),
    "explosion": ("expl", "explo", "boom", "blast"),
    "impact": ("imp", "hit"),
    "door": ("doors",),
    "vehicle": ("veh", "car"),
    "weapon": ("wpn", "weap"),
    "gun": ("guns", "gunshot"),
    "mechanical": ("mech",),
    "machine": ("mach",),
    "metal": ("metl", "metallic"),
    "water": ("watr", "wtr"),
    "wood": ("wd", "wooden"),
    "glass": ("glas",),
    "crowd": ("crwd",),
    "creature": ("crea", "monster"),
    "voice": ("vo",),
    "user interface": ("ui", "gui"),
    "laser": ("lasr",),
    "designed": ("dsgn",),
    "foley": ("foly",),
    "animal": ("anml", "animals"),
    "bird": ("birds",),
    "effects": ("fx", "sfx"),
    "alarm": ("alrm",),
    "destruction": ("dest",),
    "electricity": ("zap",),
    "magic": ("magc",),
    "weather": ("wthr",),
}
_CANON: dict[str, str] = {alt: canon for canon, alts in SYNONYMS.items() for alt in alts}

# Words that qualify a sound without naming it.
GENERIC = frozenset("""small big large little tiny huge giant heavy light short long loud soft quiet fast slow
quick hard low high deep distant close far near sharp dull bright dark medium single multiple various gentle
strong weak old new subtle intense massive very several some many few""".split())

# Words a run-together name may be made of (besides the library's own words and the tables above).
WORDS = frozenset("""
air alarm alert ambience animal applause arrow axe baby bag ball bang bark bass beam bear beat beep bell bells
bike bird birds bite blade blast bleep blip block blood blow boat body bomb bone boom bottle bounce bow bowl box
brake branch brass break breath breathe brick bubble bubbles bug bullet burn burst buzz cabin can cannon car card
cart cat cave chain chair chime chimes chip choir chop chord church clang clank clap clatter click clock close
cloth coin cold computer cork cough cow crack crash creak creaky creature cricket crow crowd crunch crush cry
cup cut cymbal dark death deep die dig ding dirt dive dog door doorbell drag dragon drain draw drawer drill drip
drop drops drone drum drums duck dust earth echo electric elephant engine error evil explosion eye fall fan
fart female fire fireworks fish flag flame flap flesh flip flute fly foot footstep footsteps forest frog fuse
gas gate ghost giant glass glitch goat gong grass gravel growl grunt guitar gun hail hair hammer hand harp hat
head heart heavy helicopter hinge hiss hit hole horn horse howl hum human ice impact insect iron jet jump key
kick kill knife knock ladder lake laser latch laugh lava leaf leaves lever lid light lightning lion liquid lock
log low machine magic male man metal mine monster motor mouse mud music nail noise ocean oil open orc paper pen
phone piano pick pig pipe plane plastic plate pop pour power pull pump punch push rain rat rattle rip river roar
rock roll roof rope rub rubber rumble run rustle saw scrape scratch scream sea shake shatter sheep shield ship
shoe shot shout shut sigh sign siren skeleton slam slap slice slide slime smash snake snap snare snore snow
sonar spark spell spin splash spray spring squeak squeal squish stab stamp steam steel step stick stomp stone
storm stretch strike string swing switch sword swoosh tap tape tear thud thump thunder tick tin tom tone tool
train trap tree truck tusker twig typewriter vehicle voice wall war water wave whip whistle whoosh wind window
wing wolf wood woosh wrench yell zap zip zipper
""".split())
_TOKEN = re.compile(r"[a-z]+|[0-9]+")


def canonical(word: str) -> str | None:
    """The canonical phrase of an abbreviation or synonym (``"bd"`` -> ``"bass drum"``), else None."""
    return _CANON.get(word.lower())


@lru_cache(maxsize=65536)
def split_compound(word: str, extra: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """A run-together lower-case word split into known words (``"wardrums"`` -> ``("war", "drums")``,
    ``"doorcreak"`` -> ``("door", "creak")``), fewest pieces first; ``(word,)`` when it is a known
    word, shorter than 5 letters or cannot be split entirely into known words of 3+ letters."""
    w = word.lower()
    vocab = WORDS | extra | frozenset(_CANON) | frozenset(c for c in SYNONYMS if " " not in c)
    if len(w) < 5 or not w.isalpha() or w in vocab:
        return (w,)
    best: list[tuple[str, ...] | None] = [None] * (len(w) + 1)
    best[0] = ()
    for end in range(3, len(w) + 1):
        for start in range(0, end - 2):
            piece = w[start:end]
            prev = best[start]
            if prev is not None and (piece in WORDS or piece in extra):
                cand = prev + (piece,)
                if best[end] is None or len(cand) < len(best[end]):
                    best[end] = cand
    got = best[len(w)]
    return got if got and len(got) > 1 else (w,)


def expand_words(words: list[str]) -> list[str]:
    """Words plus what they stand for: run-together words split, abbreviations and synonyms
    followed by their canonical words (the originals are kept). Lower case."""
    out: list[str] = []
    for w in words:
        w = w.lower()
        out.append(w)
        parts = split_compound(w) if w.isalpha() else (w,)
        if len(parts) > 1:
            out.extend(parts)
        for p in parts:
            c = canonical(p)
            if c:
                out.extend(c.split())
    return out


def tokens(text: str) -> list[str]:
    """Lower-case letter runs and digit runs of ``text``."""
    return _TOKEN.findall(text.lower())
