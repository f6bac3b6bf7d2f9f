"""Text that sound files carry, read without decoding audio: the words a library's authors
wrote into names and tags, for the full-text half of hybrid search (:mod:`.textindex`).

Pure-Python readers, bounded (at most ``MAX_BYTES`` read per file, each field capped):

- RIFF/WAVE (and RF64/BW64): ``LIST``/``INFO`` (INAM title, ICMT comment, IKEY keywords,
  ISBJ subject, IGNR genre, ...), Broadcast-WAV ``bext`` (the 256-byte Description and the
  originator), ``iXML`` (element texts such as ``NOTE``, ``DESCRIPTION``, ``CATEGORY``; entities
  are never expanded: the XML is read with a regular expression, not a parser), an ``id3 ``
  chunk;
- FLAC: the VORBIS_COMMENT metadata block; Ogg Vorbis / Opus: the comment header;
- MP3 (and any file starting with one): ID3v2.2/2.3/2.4 text, comment and TXXX frames, ID3v1;
- AIFF/AIFC: NAME, AUTH, ANNO, ``(c) `` chunks.

Field names are normalised to lower case (``title``, ``comment``, ``description``, ``keywords``,
``artist``, ``album``, ``genre``, ``category``, ...). UCS file names
(``CatID_FXName_CreatorID_SourceID``) are expanded by :func:`ucs_words`.
"""
from __future__ import annotations

import os
import re
import struct
from pathlib import Path

from ..words import split_words

__all__ = ["read_tags", "ucs_words", "path_words", "MAX_BYTES"]

MAX_BYTES = 4 << 20  # never read more than this from one file
MAX_FIELD = 4096  # characters kept per field

_INFO = {b"INAM": "title", b"ICMT": "comment", b"IKEY": "keywords", b"ISBJ": "subject", b"IGNR": "genre",
         b"IART": "artist", b"IPRD": "album", b"ICOP": "copyright", b"ISRC": "source", b"ITCH": "technician",
         b"ICRD": "date", b"ISFT": "software"}
_IXML_FIELDS = ("NOTE", "DESCRIPTION", "CATEGORY", "SUBCATEGORY", "CATID", "FXNAME", "KEYWORDS",
                "TRACK_NAME", "SCENE", "TAKE", "TAPE", "PROJECT", "LIBRARY", "SHOW", "USER_COMMENTS",
                "TITLE", "CATEGORYFULL")
_ID3_TEXT = {"TIT1": "grouping", "TIT2": "title", "TIT3": "subtitle", "TPE1": "artist", "TALB": "album",
             "TCON": "genre", "TKEY": "key", "TCOP": "copyright", "TT1": "grouping", "TT2": "title",
             "TT3": "subtitle", "TP1": "artist", "TAL": "album", "TCO": "genre"}
_ID3_COMMENT = {"COMM", "COM", "USLT", "ULT"}
_ID3_USER = {"TXXX", "TXX"}


def _clean(s: str) -> str:
    s = s.replace("\x00", " ").strip()
    return s[:MAX_FIELD]


def _add(out: dict[str, str], key: str, value: str) -> None:
    value = _clean(value)
    if not value:
        return
    key = key.strip().lower() or "comment"
    if key in out and value not in out[key]:
        out[key] = (out[key] + " | " + value)[:MAX_FIELD]
    elif key not in out:
        out[key] = value


def _latin1_or_utf8(b: bytes) -> str:
    b = b.split(b"\x00", 1)[0]
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


# --- RIFF / AIFF -----------------------------------------------------------------------------
def _chunks(f, size_fmt: str, limit: int = 10_000):
    """(id, body) of the chunks of a RIFF/AIFF file, seeking past large ones (audio data is
    never read); bodies over MAX_BYTES are skipped."""
    f.seek(12)
    for _ in range(limit):
        head = f.read(8)
        if len(head) < 8:
            return
        cid, size = head[:4], struct.unpack(size_fmt, head[4:])[0]
        start = f.tell()
        if cid in _WANTED and size <= MAX_BYTES:
            yield cid, f.read(size)
        f.seek(start + size + (size & 1))


_WANTED = {b"LIST", b"bext", b"iXML", b"ixml", b"id3 ", b"ID3 ", b"NAME", b"AUTH", b"ANNO", b"(c) "}


def _riff(f, out: dict[str, str]) -> None:
    for cid, body in _chunks(f, "<I"):
        if cid == b"LIST" and body[:4] == b"INFO":
            p = 4
            while p + 8 <= len(body):
                sid, ssize = body[p:p + 4], struct.unpack("<I", body[p + 4:p + 8])[0]
                if sid in _INFO:
                    _add(out, _INFO[sid], _latin1_or_utf8(body[p + 8:p + 8 + ssize]))
                p += 8 + ssize + (ssize & 1)
        elif cid == b"bext" and len(body) >= 256:
            _add(out, "description", _latin1_or_utf8(body[:256]))
            _add(out, "originator", _latin1_or_utf8(body[256:288]))
        elif cid in (b"iXML", b"ixml"):
            _ixml(body.decode("utf-8", "replace"), out)
        elif cid in (b"id3 ", b"ID3 "):
            _id3v2(body, out)


def _aiff(f, out: dict[str, str]) -> None:
    names = {b"NAME": "title", b"AUTH": "artist", b"ANNO": "comment", b"(c) ": "copyright"}
    for cid, body in _chunks(f, ">I"):
        if cid in names:
            _add(out, names[cid], _latin1_or_utf8(body))
        elif cid in (b"ID3 ", b"id3 "):
            _id3v2(body, out)


_XML_ELEM = re.compile(r"<([A-Za-z_][A-Za-z0-9_.-]*)(?:\s[^>]*)?>([^<]{1,%d})</\1>" % MAX_FIELD)


def _ixml(text: str, out: dict[str, str]) -> None:
    for tag, value in _XML_ELEM.findall(text[:MAX_BYTES]):
        if tag.upper() in _IXML_FIELDS:
            value = (value.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
                     .replace("&apos;", "'").replace("&amp;", "&"))
            _add(out, tag.lower(), value)


# --- Vorbis comments (FLAC, Ogg) ---------------------------------------------------------------
def _vorbis_comment(b: bytes, out: dict[str, str]) -> None:
    try:
        n = struct.unpack("<I", b[:4])[0]
        p = 4 + n  # vendor string
        count = struct.unpack("<I", b[p:p + 4])[0]
        p += 4
        for _ in range(min(count, 1000)):
            ln = struct.unpack("<I", b[p:p + 4])[0]
            entry = b[p + 4:p + 4 + ln].decode("utf-8", "replace")
            p += 4 + ln
            if "=" in entry:
                k, v = entry.split("=", 1)
                _add(out, k, v)
    except struct.error:
        return  # truncated: keep what was read


def _flac(data: bytes, out: dict[str, str]) -> None:
    pos = 4
    while pos + 4 <= len(data):
        head = data[pos]
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        if head & 0x7F == 4:
            _vorbis_comment(data[pos + 4:pos + 4 + size], out)
        pos += 4 + size
        if head & 0x80:  # last metadata block
            break


def _ogg(data: bytes, out: dict[str, str]) -> None:
    """Reassemble the first packets of the first logical stream; the 2nd is the comment header."""
    pos, packets, cur, serial = 0, [], b"", None
    while pos + 27 <= len(data) and len(packets) < 2 and data[pos:pos + 4] == b"OggS":
        sn = data[pos + 14:pos + 18]
        nseg = data[pos + 26]
        lace = data[pos + 27:pos + 27 + nseg]
        body = pos + 27 + nseg
        if serial is None:
            serial = sn
        if sn == serial:
            q = body
            for ln in lace:
                cur += data[q:q + ln]
                q += ln
                if ln < 255:
                    packets.append(cur)
                    cur = b""
        pos = body + sum(lace)
    if len(packets) >= 2:
        p = packets[1]
        if p[:7] == b"\x03vorbis":
            _vorbis_comment(p[7:], out)
        elif p[:8] == b"OpusTags":
            _vorbis_comment(p[8:], out)


# --- ID3 -------------------------------------------------------------------------------------
def _unsync(b: bytes) -> bytes:
    return b.replace(b"\xff\x00", b"\xff")


def _id3_text(b: bytes) -> list[str]:
    """ID3 text payload (encoding byte + text) -> strings (v2.4 allows several, NUL-separated)."""
    if not b:
        return []
    enc, raw = b[0], b[1:]
    if enc in (1, 2):
        codec = "utf-16" if enc == 1 else "utf-16-be"
        parts, start = [], 0
        for i in range(0, len(raw) - 1, 2):
            if raw[i:i + 2] == b"\x00\x00":
                parts.append(raw[start:i])
                start = i + 2
        parts.append(raw[start:])
        strs = [p[:len(p) // 2 * 2].decode(codec, "replace") for p in parts]
    else:
        strs = raw.decode("utf-8" if enc == 3 else "latin-1", "replace").split("\x00")
    return [x.replace("\ufeff", "") for x in strs if x.replace("\ufeff", "").strip()]


def _id3v2(data: bytes, out: dict[str, str]) -> int:
    """Parse an ID3v2 tag at the start of ``data``; returns its total length (0: none)."""
    if len(data) < 10 or data[:3] != b"ID3":
        return 0
    major, flags = data[3], data[5]
    size = sum((data[6 + i] & 0x7F) << (21 - 7 * i) for i in range(4))
    body = data[10:10 + size]
    if flags & 0x80 and major < 4:
        body = _unsync(body)
    pos = 0
    if flags & 0x40 and major >= 3:  # extended header
        ext = struct.unpack(">I", body[:4])[0] if len(body) >= 4 else 0
        pos = ext if major == 4 else ext + 4
    idlen, hlen = (3, 6) if major == 2 else (4, 10)
    while pos + hlen <= len(body):
        fid = body[pos:pos + idlen].decode("latin-1")
        if not fid.strip("\x00") or not fid.isalnum():
            break
        if major == 2:
            fsize = int.from_bytes(body[pos + 3:pos + 6], "big")
            fflags = 0
        elif major == 4:
            fsize = sum((body[pos + 4 + i] & 0x7F) << (21 - 7 * i) for i in range(4))
            fflags = body[pos + 9]
        else:
            fsize = struct.unpack(">I", body[pos + 4:pos + 8])[0]
            fflags = 0
        payload = body[pos + hlen:pos + hlen + fsize]
        pos += hlen + fsize
        if major == 4 and fflags & 0x02:
            payload = _unsync(payload)
        if fid in _ID3_TEXT:
            for s in _id3_text(payload):
                _add(out, _ID3_TEXT[fid], s)
        elif fid in _ID3_COMMENT and len(payload) > 4:  # enc, lang[3], short desc NUL text
            texts = _id3_text(payload[:1] + payload[4:])
            if texts:
                _add(out, "comment", texts[-1])
        elif fid in _ID3_USER:
            texts = _id3_text(payload)
            if len(texts) >= 2:
                _add(out, texts[0], texts[1])
            elif texts:
                _add(out, "comment", texts[0])
    return 10 + size


def _id3v1(tail: bytes, out: dict[str, str]) -> None:
    if len(tail) == 128 and tail[:3] == b"TAG":
        for key, a, b in (("title", 3, 33), ("artist", 33, 63), ("album", 63, 93), ("comment", 97, 127)):
            _add(out, key, tail[a:b].split(b"\x00", 1)[0].decode("latin-1"))


# --- entry points ----------------------------------------------------------------------------
def read_tags(path: str | Path) -> dict[str, str]:
    """Embedded text fields of ``path`` ({} when it has none or cannot be read). Never raises
    on malformed tags: what parses is kept."""
    from ..safe_open import open_regular

    out: dict[str, str] = {}
    try:
        fd, _ = open_regular(path)  # never blocks on a FIFO/device named like audio
        with os.fdopen(fd, "rb") as f:
            head = f.read(12)
            try:
                if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
                    _riff(f, out)
                    return out
                if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                    _aiff(f, out)
                    return out
                f.seek(0)
                data = f.read(MAX_BYTES)
                if data[:4] == b"fLaC":
                    _flac(data, out)
                elif data[:4] == b"OggS":
                    _ogg(data, out)
                elif data[:3] == b"ID3":
                    n = _id3v2(data, out)
                    if data[n:n + 4] == b"fLaC":  # FLAC with a leading ID3 tag
                        _flac(data[n:], out)
                if data[:3] == b"ID3" or path_suffix(path) == ".mp3":
                    f.seek(0, 2)
                    if f.tell() >= 128:
                        f.seek(-128, 2)
                        _id3v1(f.read(128), out)
            except (IndexError, struct.error, ValueError):
                pass  # malformed: keep the fields read so far
    except OSError:
        return out
    return out


def path_suffix(path: str | Path) -> str:
    return Path(path).suffix.lower()


# --- names -----------------------------------------------------------------------------------

# Universal Category System top-level CatID prefixes -> category words (UCS v8 main categories).
UCS_CATEGORIES = {
    "AIR": "air", "AERO": "aircraft", "ALRM": "alarms", "AMB": "ambience", "ANML": "animals",
    "ARCH": "archived", "BEEP": "beeps", "BELL": "bells", "BIRD": "birds", "BOAT": "boats",
    "BLLT": "bullets", "CART": "cartoon", "TOON": "cartoon", "CERM": "ceramics", "CHAIN": "chains",
    "CHEM": "chemicals", "CLOCK": "clocks", "CLOTH": "cloth", "COMM": "communications",
    "COMP": "computers", "CREA": "creatures", "CROWD": "crowds", "DSGN": "designed",
    "DEST": "destruction", "DIRT": "dirt sand", "DOOR": "doors", "DRWR": "drawers",
    "ELEC": "electricity", "EQUIP": "equipment", "EXPL": "explosions", "FART": "farts",
    "FGHT": "fight", "FIRE": "fire", "FIREWRKS": "fireworks", "FOLY": "foley", "FOOD": "food drink",
    "FEET": "footsteps", "GAME": "games", "GEOT": "geothermal", "GLAS": "glass", "GORE": "gore",
    "GUN": "guns", "GUNS": "guns", "HORN": "horns", "HUMN": "human", "ICE": "ice", "LASR": "lasers",
    "LETH": "leather", "LIQ": "liquid mud", "MACH": "machines", "MAGC": "magic",
    "MECH": "mechanical", "METL": "metal", "MOTR": "motors", "MOVE": "movement", "MUSC": "musical",
    "NTRL": "natural disaster", "OBJ": "objects", "PAPR": "paper", "PLAS": "plastic", "RAIN": "rain",
    "ROBO": "robots", "ROCK": "rocks", "ROPE": "rope", "RUBB": "rubber", "SCI": "scifi",
    "SNOW": "snow", "SPRT": "sports", "SWSH": "swooshes", "SWRD": "swords", "TOOL": "tools",
    "TOY": "toys", "TRAN": "trains", "UI": "user interface", "VEH": "vehicles", "VOX": "voices",
    "WATR": "water", "WEAP": "weapons", "WTHR": "weather", "WHSH": "whooshes", "WIND": "wind",
    "WNDW": "windows", "WING": "wings", "WOOD": "wood",
}
_UCS_CATID = re.compile(r"^([A-Z]{2,8})([A-Z][a-z][A-Za-z]*)?$")


def ucs_words(stem: str) -> list[str]:
    """Words implied by a UCS file name ``CatID_FX Name_Creator_Source`` (e.g.
    ``DOORWood_Creak Open Slow_JD_Lib`` -> ``["doors", "wood"]``); [] for other names."""
    head = stem.split("_", 1)[0]
    m = _UCS_CATID.match(head)
    if not m or "_" not in stem:
        return []
    cat, sub = m.group(1), m.group(2)
    if cat not in UCS_CATEGORIES:
        return []
    words = UCS_CATEGORIES[cat].split()
    if sub:
        words.append(sub.lower())
    return words


def path_words(key: str) -> tuple[str, str]:
    """(name words, folder words) of a relative path: CamelCase, snake_case, digits split,
    UCS categories expanded. ``"Doors/DOORWood_CreakSlow_01.wav"`` -> ("door wood creak slow 01
    doors wood", "doors")."""
    parts = Path(key).parts
    stem = Path(parts[-1]).stem if parts else ""
    folders = " ".join(" ".join(split_words(p, "index")) for p in parts[:-1])
    return " ".join(split_words(stem, "index") + ucs_words(stem)), folders
