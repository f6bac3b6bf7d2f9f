from __future__ import annotations

import pytest

from soundseek.data.debian_captions import caption_from_path, clean_label, split_compound
from soundseek.words import split_words

CASES = [
    # (path, drop_prefixes, folder_context, expected caption)
    ("sounds/explosionBoss_02.wav", (), False, "explosion boss"),
    ("Oxygen-Im-Message-In.ogg", ("oxygen",), False, "instant message in"),
    ("default_dig_choppy.1.ogg", ("default",), False, "dig choppy"),
    ("146731__fins__game-fail.ogg", (), False, "game fail"),
    ("sfx_select01.ogg", (), False, "select"),
    ("ion medium~.wav", (), False, "ion medium"),
    ("camaro_s16_le.wav", (), False, "camaro"),
    ("sound_big_explosion_1.wav", (), False, "big explosion"),
    ("LrgExpl.ogg", (), False, "large explosion"),
    ("shotgunreload.ogg", (), False, "shotgun reload"),
    ("bossdst.wav", (), False, "boss destroyed"),
    ("FootStepStone1.ogg", (), False, "footsteps on stone"),
    ("btn-click_v2.wav", (), False, "button click"),
    ("x-deepin-app-sent-to-desktop.wav", ("x", "deepin"), False, "app sent to desktop"),
    ("weapons/anvil_fall.ogg", (), True, "weapon anvil fall"),
    ("weapons/anvil_fall.ogg", (), False, "anvil fall"),
    ("MonsterSounds/wasp/dead1.ogg", (), True, "wasp dead"),
    ("steps/step_metal4.ogg", (), True, "footsteps on metal"),          # folder already in the caption
    ("sounds/laser.wav", (), True, "laser"),                    # uninformative folder
    ("Sounds/NYX/NYX_PAIN4.ogg", (), True, "nyx pain"),
    # no meaning -> None
    ("01-0.wav", (), False, None),
    ("sound000.wav", (), False, None),
    ("a3f9c2e1.ogg", (), False, None),
    ("sfx_01.wav", (), False, None),
    ("gr0.ogg", (), False, None),
    ("music_02.ogg", (), False, None),
]


@pytest.mark.parametrize("path,drop,folder,expected", CASES)
def test_caption_table(path, drop, folder, expected):
    assert caption_from_path(path, drop, folder) == expected


def test_split_words_handles_camel_snake_kebab_digits():
    assert split_words("HCBeginLevel_v2", "caption") == ["hc", "begin", "level", "v", "2"]
    assert split_words("shot-Primary.big_01", "caption") == ["shot", "primary", "big", "01"]
    assert split_words("", "caption") == []


def test_split_compound_only_splits_into_known_words():
    assert split_compound("sniperreload") == ("sniper", "reload")
    assert split_compound("rubberduck") == ("rubber", "duck")
    assert split_compound("xyzzyplugh") == ("xyzzyplugh",)   # unknown pieces: unchanged
    assert split_compound("explosion") == ("explosion",)     # known word: unchanged
    assert split_compound("hit") == ("hit",)                 # short: unchanged


def test_clean_label_is_deterministic_and_lowercase():
    a = [clean_label("Big_Explosion 3"), clean_label("Big_Explosion 3")]
    assert a == ["big explosion", "big explosion"]
    assert clean_label("42") is None
