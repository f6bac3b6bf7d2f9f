"""Sound files inside archives and formats libsndfile does not read (``soundseek prepare debian``).

- :func:`read_rcc`: Qt binary resource files (``.rcc``, as made by Qt's ``rcc`` tool, format
  versions 1-3): a header ``qres`` + version + offsets of the node tree, the data and the names;
  every file node points to a length-prefixed blob, optionally zlib-compressed (``qCompress``:
  a 4-byte big-endian length + a zlib stream). zstd-compressed entries (Qt 6 flag 4) are reported.
- :func:`read_zip`: zip archives (``.pk3`` of id-tech games, ``.wz`` of Warzone 2100, ``.zip``).
- :func:`decode_wavpack`: WavPack (``.wv``) to RIFF/WAVE bytes with Debian's ``wvunpack``.

Archive members are yielded as ``(inner path, bytes)`` in a deterministic (sorted) order; work is
bounded: members larger than ``max_member_bytes`` are skipped without being read.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

MAX_MEMBER_BYTES = 64 * 1024 * 1024
ARCHIVE_EXTENSIONS = frozenset({".rcc", ".pk3", ".zip", ".wz"})
"""Archives whose members are read: Qt resources, and zip files (id-tech ``.pk3``, Warzone 2100 ``.wz``)."""


class ArchiveError(ValueError):
    """A malformed archive."""


# ------------------------------------------------------------------ Qt .rcc
_RCC_COMPRESSED, _RCC_DIRECTORY, _RCC_ZSTD = 1, 2, 4


def read_rcc(data: bytes, max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[tuple[str, bytes]]:
    """``(path, bytes)`` of every file in a Qt resource archive, sorted by path.

    Raises:
        ArchiveError: not an rcc file, unknown version, offsets outside the file or a cycle.
    """
    if data[:4] != b"qres" or len(data) < 20:
        raise ArchiveError("not a Qt resource file (no 'qres' magic)")
    version, tree, blobs, names = struct.unpack_from(">IIII", data, 4)
    if version not in (1, 2, 3):
        raise ArchiveError(f"unsupported rcc format version {version}")
    node_size = 14 if version == 1 else 22
    n = len(data)

    def name(offset: int) -> str:
        at = names + offset
        if at + 6 > n:
            raise ArchiveError("name offset outside the file")
        length = struct.unpack_from(">H", data, at)[0]
        raw = data[at + 6: at + 6 + 2 * length]
        if len(raw) != 2 * length:
            raise ArchiveError("truncated name")
        return raw.decode("utf-16-be", "replace")

    out: list[tuple[str, int, int]] = []      # (path, flags, blob offset)
    visited: set[int] = set()

    def walk(node: int, prefix: str, depth: int) -> None:
        if node in visited or depth > 64:
            raise ArchiveError("cycle or excessive depth in the resource tree")
        visited.add(node)
        at = tree + node * node_size
        if at + 14 > n:
            raise ArchiveError("tree node outside the file")
        name_off, flags = struct.unpack_from(">IH", data, at)
        here = prefix if node == 0 else f"{prefix}{name(name_off)}"
        if flags & _RCC_DIRECTORY:
            count, first = struct.unpack_from(">II", data, at + 6)
            if count > n:
                raise ArchiveError("implausible child count")
            for child in range(first, first + count):
                walk(child, here + "/" if here else "", depth + 1)
        else:
            blob = struct.unpack_from(">I", data, at + 10)[0]
            out.append((here, flags, blob))

    walk(0, "", 0)
    for path, flags, blob in sorted(out):
        at = blobs + blob
        if at + 4 > n:
            raise ArchiveError(f"data of {path!r} outside the file")
        size = struct.unpack_from(">I", data, at)[0]
        if size > max_member_bytes or at + 4 + size > n:
            continue
        body = data[at + 4: at + 4 + size]
        if flags & _RCC_ZSTD:
            continue                                   # Qt 6 zstd: not in the standard library
        if flags & _RCC_COMPRESSED:
            if len(body) < 4 or struct.unpack_from(">I", body)[0] > max_member_bytes:
                continue
            try:
                body = zlib.decompress(body[4:])
            except zlib.error as e:
                raise ArchiveError(f"bad zlib data in {path!r}: {e}") from None
        yield path, body


def write_rcc(files: dict[str, bytes], compress: bool = False) -> bytes:
    """A version-2 Qt resource archive holding ``files`` (paths use ``/``), as Qt's ``rcc`` lays
    it out: nodes breadth-first, the children of a directory contiguous. ``compress`` stores the
    files ``qCompress``-ed. Used by the tests; not needed to build corpora.
    """
    tree: dict = {}
    for path, body in files.items():
        node = tree
        parts = path.strip("/").split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = body
    order: list[tuple[str, object]] = [("", tree)]
    child_start: dict[int, int] = {}
    i = 0
    while i < len(order):
        if isinstance(order[i][1], dict):
            child_start[i] = len(order)
            order.extend(sorted(order[i][1].items()))  # type: ignore[union-attr]
        i += 1
    names, blobs, table = bytearray(), bytearray(), []
    for idx, (key, val) in enumerate(order):
        name_off = len(names)
        if idx:
            names.extend(struct.pack(">HI", len(key), 0) + key.encode("utf-16-be"))
        if isinstance(val, dict):
            table.append(struct.pack(">IHII", name_off, _RCC_DIRECTORY, len(val), child_start[idx]) + bytes(8))
        else:
            body = struct.pack(">I", len(val)) + zlib.compress(val) if compress else val  # type: ignore[arg-type]
            table.append(struct.pack(">IHHHI", name_off, _RCC_COMPRESSED if compress else 0, 0, 0, len(blobs))
                         + bytes(8))
            blobs.extend(struct.pack(">I", len(body)) + body)
    tree_bytes = b"".join(table)
    tree_off = 20
    blobs_off = tree_off + len(tree_bytes)
    names_off = blobs_off + len(blobs)
    return (b"qres" + struct.pack(">IIII", 2, tree_off, blobs_off, names_off) + tree_bytes
            + bytes(blobs) + bytes(names))


# ------------------------------------------------------------------ zip / pk3
def read_zip(path: Path, max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[tuple[str, bytes]]:
    """``(member path, bytes)`` of the regular files of a zip archive, sorted by name.

    Members with absolute paths or ``..`` are skipped (their names are only used as labels,
    but such archives are hostile); so are members whose declared size exceeds the bound.
    """
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"{path.name}: {e}") from None
    with zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            name = info.filename
            if info.is_dir() or name.startswith("/") or ".." in name.split("/"):
                continue
            if info.file_size > max_member_bytes:
                continue
            with zf.open(info) as fh:
                body = fh.read(max_member_bytes + 1)
            if len(body) <= max_member_bytes:
                yield name, body


# ------------------------------------------------------------------ WavPack
def wavpack_available() -> bool:
    return shutil.which("wvunpack") is not None


def decode_wavpack(path: Path, timeout: float = 60.0) -> bytes:
    """RIFF/WAVE bytes of a WavPack file (Debian package ``wavpack``'s ``wvunpack``).

    Raises:
        FileNotFoundError: ``wvunpack`` is not installed.
        ArchiveError: it failed on this file.
    """
    exe = shutil.which("wvunpack")
    if exe is None:
        raise FileNotFoundError("wvunpack not found: install the Debian package 'wavpack' "
                                "(apt-get install wavpack) to read .wv files")
    proc = subprocess.run([exe, "-q", "-y", str(path), "-o", "-"], capture_output=True, timeout=timeout)
    if proc.returncode != 0 or proc.stdout[:4] != b"RIFF":
        raise ArchiveError(f"wvunpack failed on {path.name}: {proc.stderr.decode(errors='replace')[-200:]}")
    return proc.stdout
