"""Weak captions from sound-file paths (``soundseek prepare debian``, see docs/data-prep.md).

Game and desktop-theme packages name their sound effects after what they are
(``explosionBoss.wav``, ``default_dig_choppy.1.ogg``, ``Oxygen-Im-Message-In.ogg``). This
module turns such a path into a short lowercase label in the style of real-sfx-dev
("boss explosion" is not attempted: word order is kept, "explosion boss"):

1. strip the extension(s), a Freesound id prefix (``146731__fins__``), a loop marker (``~``)
   and sample-format tags (``_s16_le``);
2. split camelCase, snake_case, kebab-case, dots and letter/digit boundaries;
3. drop numbers, version tags (``v2``), hashes, generic words ("sound", "sfx", "music", ...)
   and package-specific leading words (``drop_prefixes``);
4. expand common abbreviations (``expl`` -> explosion, ``btn`` -> button, ...) and split
   glued compounds made of known sound words (``shotgunreload`` -> "shotgun reload");
5. optionally put an informative parent folder in front (``weapons/anvil_fall`` -> "weapon anvil fall");
6. names in another language are translated word by word first (:data:`TRANSLATIONS`: Czech,
   German, French tables of the words the packages use); action suffixes read as English
   (``lion_attack`` -> "lion attack", ``sheep_death`` -> "sheep dying", ``cattle_idle3`` ->
   "cattle"), and footstep surfaces become "footsteps on X" (``steps_gravel`` -> "footsteps on gravel").

A name that carries no meaning (only numbers, hashes or generic words) gives ``None``.
Everything is deterministic: no randomness, no dependence on other files.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import PurePosixPath

from ..words import split_words

ABBREVIATIONS: dict[str, str] = {
    "expl": "explosion", "explo": "explosion", "explos": "explosion", "exp": "explosion",
    "explod": "explode", "btn": "button", "amb": "ambient", "ambi": "ambient", "bg": "background",
    "msg": "message", "msgs": "messages", "sys": "system", "im": "instant message", "lrg": "large",
    "lg": "large", "med": "medium", "sml": "small", "sm": "small", "dst": "destroyed",
    "dest": "destroyed", "wpn": "weapon", "pwr": "power", "clic": "click", "btns": "buttons",
    "ack": "acknowledge", "sel": "select", "vox": "voice", "mech": "mechanical", "env": "environment",
    "dmg": "damage", "atk": "attack", "att": "attack", "mg": "machine gun", "ui": "interface",
    "notif": "notification", "elec": "electric", "veh": "vehicle", "ftstep": "footstep",
    "std": "standard", "destroied": "destroyed", "ref": "referee", "bd": "bass drum", "sn": "snare", "hh": "hi hat", "perc": "percussion", "fx": "",
    "wp": "weapon", "shotty": "shotgun", "plr": "player",
    "explons": "explosions", "interfce": "interface", "fs": "footstep", "foorstep": "footstep", "con": "construction", "gen": "", "telep": "teleport",
    "sfx": "", "snd": "", "sound": "", "sounds": "", "wav": "", "ogg": "",
}
"""Token -> replacement ("" drops the token). Applied after splitting, before compounds."""

GENERIC: frozenset[str] = frozenset({
    "sound", "sounds", "sfx", "fx", "snd", "audio", "sample", "samples", "music", "track",
    "bgm", "theme", "default", "custom", "untitled", "new", "final", "mono", "stereo", "raw",
    "loop", "lp", "le", "be", "s16", "s8", "u8", "copy", "edit", "edited", "version", "test", "generic",
    "hz", "bit", "khz",
})
"""Words that say nothing about the sound; a caption made only of these is dropped."""

TRANSLATIONS: dict[str, dict[str, str]] = {
    # berusky2-data (sound/sound/*.wav): Czech names, written without diacritics, some glued
    "cs": {
        "auto": "car", "blesk": "lightning", "bubl": "bubble", "bubliny": "bubbles", "exploze": "explosion",
        "hrebik": "nail", "hrom": "thunder", "krysa": "rat", "ptak": "bird", "tlacitko": "button",
        "vitr": "wind", "voda": "water", "vytah": "lift", "jizda": "moving", "rozjezd": "starting",
        "zblunk": "plop", "bedna": "crate", "bortici": "collapsing", "dvere": "door", "otevrit": "open",
        "zavrit": "close", "dvereotevrit": "door open", "dverezavrit": "door close", "hvezda": "star",
        "krumpac": "pickaxe", "krompace": "pickaxe", "les": "forest", "mesto": "city", "odemceni": "unlocking",
        "pad": "falling", "padklice": "falling key", "paddrevo": "falling wood", "padkov": "falling metal",
        "batohu": "backpack", "dynamitu": "dynamite", "zavazi": "weight", "klice": "key", "snorchl": "snorkel",
        "parnik": "steamboat", "racek": "seagull", "rozpad": "crumbling", "seber": "pick up", "zvon": "bell",
        "vynor": "surfacing", "stepsand": "footsteps on sand", "stepsgrass": "footsteps on grass",
        "stepsnow": "footsteps on snow", "stepssteel": "footsteps on steel", "stepsstone": "footsteps on stone",
        "stepswood": "footsteps on wood", "tvon": "television on", "tvoff": "television off",
        "magnet": "magnet", "balance": "balance", "swamp": "swamp", "village": "village", "frog": "frog",
        "crow": "crow", "eat": "eat", "exit": "exit", "fairy": "fairy", "pray": "pray",
    },
    # mirrormagic-data (sounds/snd_*/*.wav): German words and German onomatopoeia
    "de": {
        "amoebe": "amoeba", "autsch": "ouch", "booom": "boom", "buing": "boing", "deng": "ding",
        "holz": "wood", "kabumm": "kaboom explosion", "klapper": "rattle", "kling": "clink", "klopf": "knock",
        "knack": "crack", "lachen": "laughing", "miep": "beep", "njam": "munching", "oeffnen": "opening",
        "pling": "ping", "pusch": "push", "quiek": "squeak", "roaaar": "roar", "roehr": "bellow",
        "schlurf": "shuffle", "sirr": "whirr", "warnton": "warning tone", "zisch": "hiss", "empty": "empty",
        "fuel": "fuel", "gate": "gate", "gong": "gong", "door": "door", "exit": "exit", "laser": "laser",
        "slurp": "slurp", "whoosh": "whoosh", "bong": "bong", "pong": "pong", "blurb": "blurb",
        "bratsche": "viola",  # csoundqt-examples SourceMaterials/BratscheMono.wav
    },
    # heroes-sound-effects (sfx/*.wav): French names
    "fr": {
        "argent": "money", "claxon": "horn", "ecrase": "crushed", "finlevel": "level finished",
        "foule": "crowd", "invinc": "invincible", "lmoins": "life lost", "lplus": "extra life",
        "mort": "death", "speedown": "slow down", "speedup": "speed up", "coins": "coins", "clock": "clock",
    },
}
"""Per language: word of the file names -> English ("" drops the word). Only the words the
packages of that language use; a word missing from the table is kept as it is."""

_SUFFIXES: dict[str, str] = {"idle": "", "death": "dying", "die": "dying", "dies": "dying", "attack": "attack"}
"""Action suffixes of creature sounds (``cattle_idle3``, ``sheep_death``, ``lion_attack``): "idle" (the
creature's ordinary call) is dropped, the others read as English."""

SURFACES = frozenset({"grass", "gravel", "sand", "snow", "stone", "wood", "metal", "steel", "dirt", "mud", "water",
                      "carpet", "concrete", "tile", "leaves", "ice", "shallow", "stairs"})
"""Footstep surfaces: "footstep gravel" / "steps gravel" -> "footsteps on gravel"."""
_STEP_WORDS = frozenset({"footstep", "footsteps", "step", "steps", "walk"})

_KNOWN_WORDS = """
air alarm alert anvil applause arrow attach attack axe ball balloon bang bark bass bat beam
bee beep bell big bird bite blade blast blip block blow boing bomb bonus boom boost boss
bounce bow box break breath brick bubble bullet bump burn burst button buzz cake call camera
cannon car card cash cat chain chainsaw change charge cheer chest chime chirp chop clang clank
clap click climb clock close coin collect collide complete confirm count countdown cow crash
crate creak crowd crunch crystal cut damage dead death deny denied destroy dig dirt dive dog
door down drill drink drip drop drum duck egg electric empty end enemy engine error explode
explosion extra fail fall fanfare fire flame flap flip foot footstep freeze frog gain game gas
gate gem ghost glass go gold grab grass gravel grenade growl grunt gun hammer hand hard heal
heavy helicopter hit hog horn hurt ice impact item jet jump key kick kill kiss knife knock land
laser laugh lava lever life lift light lightning lock lose low machine magic metal mine minigun
miss missile monster motor mouse move note ok open pain paper pick pickup plane plasma plop
point pop portal power pull punch push rain reload release ricochet ring rock rocket roll rope
rubber run saw scream select shield shoot shot shotgun shout sight skid slam slide small smash
snap sniper snow spark speed spell splash splat spring start steam step stone stop storm
strike swing switch sword tap teleport throw thud thunder tick time toggle touch train trap
tree turn up wall warp water whip whistle whoosh wind win wood woosh yell zap zombie
large medium get level finish skip menu exit item spawn over ready player connected ship stage
team chat notify crowd boo ooh long short twice soft cave city tank shower good idea drop out
off all low high very well done your fall deep trigger rotate shutter bell save tower layer
chant gravity jetpack ammo heart beat gust band triple rift collapse melon grave baseball bolt
nuclear police truck cracker tail dart sting lobby online screenshot saved hand collision is
leaves rocky crash ground
""".split() + ["in", "on", "of", "go", "ok"]
"""Vocabulary for splitting glued compounds (``sniperreload``); only tokens of 7+ letters
that are not themselves in this list are split, and only if every piece is a known word
(or an abbreviation of 3+ letters, expanded)."""

_UNINFORMATIVE_DIRS = frozenset({
    "sound", "sounds", "sfx", "snd", "audio", "data", "wav", "wavs", "ogg", "effects", "soundfx",
    "sound effects", "chunks", "default", "share", "games", "usr", "res", "resources", "assets",
    "misc", "media", "common", "commondata", "stereo", "mono", "base", "global", "lib", "game", "resource",
})

_FREESOUND_PREFIX = re.compile(r"^\d+__[^_]+(?:_[^_]+)*?__")
_FORMAT_TAG = re.compile(r"[_\-.](?:s16|s8|u8|s24|f32)(?:[_\-.]?(?:le|be))?$", re.IGNORECASE)
_HASH = re.compile(r"^(?=.*\d)(?=.*[a-f])[0-9a-f]{6,}$")
_VERSION = re.compile(r"^v\d+$")


@lru_cache(maxsize=4096)
def split_compound(token: str) -> tuple[str, ...]:
    """Split a glued lowercase token into known words, fewest pieces first; unchanged if impossible."""
    if len(token) < 7 or token in _KNOWN or not token.isalpha():
        return (token,)
    n = len(token)
    best: list[tuple[str, ...] | None] = [None] * (n + 1)
    best[0] = ()
    for end in range(3, n + 1):
        for start in range(0, end - 1):
            prev = best[start]
            piece = token[start:end]
            if prev is not None and (piece in _KNOWN or ABBREVIATIONS.get(piece)):
                cand = prev + tuple(ABBREVIATIONS.get(piece, piece).split())
                if best[end] is None or len(cand) < len(best[end]):  # type: ignore[arg-type]
                    best[end] = cand
    return best[n] if best[n] else (token,)


_KNOWN = frozenset(_KNOWN_WORDS)


def _clean_tokens(words: list[str], drop_prefixes: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for w in words:
        if w.isdigit() or _HASH.match(w) or _VERSION.match(w):
            continue
        if len(w) == 1 and w != "a":
            continue
        w = ABBREVIATIONS.get(w, w)
        for piece in w.split():
            out.extend(split_compound(piece))
    while out and out[0] in drop_prefixes:
        out.pop(0)
    kept = [w for w in out if w not in GENERIC]
    return [w for i, w in enumerate(kept) if i == 0 or kept[i - 1] != w]  # "message message" -> "message"


def translate(words: list[str], language: str) -> list[str]:
    """Words of ``language`` to English with :data:`TRANSLATIONS` (unknown words kept; "en": unchanged).

    Raises:
        ValueError: no table for ``language``.
    """
    if language == "en":
        return words
    if language not in TRANSLATIONS:
        raise ValueError(f"no translation table for language {language!r}; valid: en, {', '.join(sorted(TRANSLATIONS))}")
    table = TRANSLATIONS[language]
    out: list[str] = []
    for w in words:
        out.extend(table.get(w, w).split())
    return out


def _actions_and_surfaces(tokens: list[str]) -> list[str]:
    """``[.., "idle"]`` -> drop; ``"death"`` -> "dying"; "steps gravel" -> "footsteps on gravel"."""
    out = [w for w in (_SUFFIXES.get(t, t) if i > 0 else t for i, t in enumerate(tokens)) if w]
    out = [w for i, w in enumerate(out) if not (w == "foot" and out[i + 1: i + 2] in (["step"], ["steps"]))]
    steps = [i for i, w in enumerate(out) if w in _STEP_WORDS]
    surface = [w for w in out if w in SURFACES]
    if steps and len(surface) == 1 and "on" not in out:
        rest = [w for w in out if w not in _STEP_WORDS and w != surface[0]]
        return rest + ["footsteps", "on", surface[0]]
    return out


def clean_label(text: str, drop_prefixes: tuple[str, ...] = (), language: str = "en",
                surfaces: bool = True) -> str | None:
    """Caption from a free-form name (no extension handling): words translated to English
    (``language``), abbreviations, action suffixes and footstep surfaces, no numbers."""
    words = [w for w in split_words(text, "caption") if not w.isdigit()]
    tokens = _clean_tokens(translate(words, language), tuple(p.lower() for p in drop_prefixes))
    tokens = _actions_and_surfaces(tokens) if surfaces else tokens
    if not any(sum(c.isalpha() for c in t) >= 3 for t in tokens):
        return None
    return " ".join(tokens)


def _stem(name: str) -> str:
    stem = PurePosixPath(name).stem
    stem = re.sub(r"\.\d+$", "", stem)          # carts_cart_moving.1.ogg
    stem = stem.rstrip("~ ")                    # endless-sky loop marker "ion medium~"
    stem = _FREESOUND_PREFIX.sub("", stem)      # 146731__fins__game-fail
    stem = _FORMAT_TAG.sub("", stem)            # camaro_s16_le
    return stem


def folder_label(folder: str, language: str = "en") -> str | None:
    """Singular, cleaned folder name if it says something about the sound, else None."""
    label = clean_label(folder, language=language)
    if label is None or label in _UNINFORMATIVE_DIRS or folder.lower() in _UNINFORMATIVE_DIRS:
        return None
    words = label.split()
    if len(words) > 3:
        return None
    last = words[-1]
    if last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith("s") and not last.endswith("ss") and len(last) > 3:
        last = last[:-1]
    return " ".join(words[:-1] + [last])


def caption_from_path(
    path: str | PurePosixPath,
    drop_prefixes: tuple[str, ...] = (),
    folder_context: bool = False,
    language: str = "en",
) -> str | None:
    """Caption for a sound file from its name (and optionally its parent folder).

    Args:
        path: the file's path (POSIX separators); only the last one or two parts are used.
        drop_prefixes: leading words to remove (package names such as "oxygen").
        folder_context: put the parent folder in front when it is informative and not
            already in the caption ("weapons/anvil_fall.ogg" -> "weapon anvil fall").
        language: language of the names ("en", or a key of :data:`TRANSLATIONS`).

    Returns:
        The caption, or None when the name carries no meaning ("01.wav", "a3f9c2e1.ogg").

    Example: ``caption_from_path("sounds/explosionBoss_02.wav")`` -> ``"explosion boss"``.
    """
    p = PurePosixPath(path)
    label = clean_label(_stem(p.name), drop_prefixes, language, surfaces=False)
    if label is None:
        return None
    if folder_context and len(p.parts) > 1:
        folder = folder_label(p.parent.name, language)
        words = label.split()
        if (folder is not None and not set(folder.split()) & _stems(words) and folder not in drop_prefixes
                and not (_STEP_WORDS & set(words) and "step" in folder)):
            # an action folder ("death/goat.ogg") reads as a suffix: "goat dying"
            label = f"{label} {folder}" if folder in _SUFFIXES else f"{folder} {label}"
    return " ".join(_actions_and_surfaces(label.split()))


def _stems(words: list[str]) -> set[str]:
    out = set(words)
    out.update(w[:-1] for w in words if w.endswith("s"))
    out.update(w + "s" for w in words)
    return out


# ------------------------------------------------------------------ templates
_GERUNDS: dict[str, str] = {
    "knock": "knocking", "clap": "clapping", "laugh": "laughing", "scream": "screaming", "shout": "shouting",
    "yell": "yelling", "whistle": "whistling", "cough": "coughing", "sneeze": "sneezing", "snore": "snoring",
    "hammer": "hammering", "saw": "sawing", "chop": "chopping", "dig": "digging", "type": "typing",
    "drink": "drinking", "eat": "eating", "walk": "walking", "run": "running", "jump": "jumping",
    "kiss": "kissing", "breath": "breathing", "breathe": "breathing", "cheer": "cheering", "sigh": "sighing",
    "hammering": "hammering", "clapping": "clapping", "knocking": "knocking", "footstep": "walking",
    "footsteps": "walking", "swim": "swimming", "splash": "splashing", "sweep": "sweeping", "write": "writing",
}
"""Label heads that describe a person's action: "someone X-ing" reads right for these only."""


def caption_variants(label: str, key: str) -> list[str]:
    """The label and one templated phrase chosen by a hash of ``key`` (deterministic).

    Templates: "the sound of X", "X sound effect", "a recording of X" for any label, and
    "someone X-ing ..." when the label starts with a person's action (:data:`_GERUNDS`):
    ``caption_variants("knock door", "a.wav")`` -> ``["knock door", "someone knocking door"]``.
    Nothing is added that the label does not state.
    """
    words = label.split()
    options = [f"the sound of {label}", f"{label} sound effect", f"a recording of {label}"]
    if words and words[0] in _GERUNDS:
        options.append(" ".join(["someone", _GERUNDS[words[0]]] + words[1:]))
    pick = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % len(options)
    return [label, options[pick]]
