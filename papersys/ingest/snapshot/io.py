"""Opening a snapshot file as a stream of lines: plain, gzip, zstd or a one-member zip, by magic bytes."""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, cast

from papersys.errors import SnapshotError

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_ZIP = b"PK\x03\x04"
_BUFFER = 1 << 20


def compression_of(path: Path) -> str:
    """``plain`` | ``gzip`` | ``zstd`` | ``zip``, from the first bytes (the file name may lie)."""
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic.startswith(_GZIP):
        return "gzip"
    if magic == _ZSTD:
        return "zstd"
    if magic == _ZIP:
        return "zip"
    return "plain"


class _ZstdFrames(io.RawIOBase):
    """Decompresses concatenated zstd frames; unlike ``stream_reader`` a truncated file is an error."""

    def __init__(self, raw: IO[bytes]) -> None:
        import zstandard

        self._raw = raw
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._obj = self._new()
        self._pending = b""
        self._pos = 0
        self._in_frame = False  # bytes of an unfinished frame have been fed

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        chunk = self._raw.read(_BUFFER)
        if not chunk:
            if self._in_frame:
                raise EOFError("zstd data ends in the middle of a frame (truncated file?)")
            return False
        out = [self._obj.decompress(chunk)]
        self._in_frame = True
        while self._obj.eof:  # a frame ended inside this chunk: the rest starts the next frame
            rest = self._obj.unused_data
            self._obj = self._new()
            self._in_frame = bool(rest)
            if not rest:
                break
            out.append(self._obj.decompress(rest))
        self._pending, self._pos = b"".join(out), 0
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while self._pos >= len(self._pending):
            if not self._fill():
                return 0
        size = min(len(buffer), len(self._pending) - self._pos)
        buffer[:size] = self._pending[self._pos : self._pos + size]
        self._pos += size
        return size


def _decode_errors(compression: str) -> tuple[type[BaseException], ...]:
    """What reading raises on corrupt or truncated input, or a failing disk."""
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, zipfile.BadZipFile)
    if compression == "zstd":
        import zstandard

        errors += (zstandard.ZstdError,)
    return errors


@dataclass
class LineStream:
    """Decompressed lines of one snapshot file, read in chunks; ``position()`` is the offset on disk."""

    path: Path
    lines: IO[bytes]
    raw: IO[bytes]
    compression: str

    def position(self) -> int:
        return self.raw.tell()

    def _fail(self, exc: BaseException, where: str) -> SnapshotError:
        what = "corrupt or truncated" if self.compression != "plain" else "unreadable"
        return SnapshotError(f"{self.path}: {what} {where} ({type(exc).__name__}: {exc})")

    def read_chunk(self, max_lines: int) -> list[bytes]:
        """The next ``max_lines`` lines (fewer at the end, none after it)."""
        try:
            return list(islice(self.lines, max_lines))
        except _decode_errors(self.compression) as exc:
            raise self._fail(exc, "data") from exc

    def skip_to(self, offset: int) -> None:
        """Continue after the first ``offset`` decompressed bytes (a line boundary recorded earlier)."""
        if offset <= 0:
            return
        if self.compression == "plain":
            self.lines.seek(offset)
            return
        # compressed streams cannot seek: decompress and discard (zstd ~1 GB/s, gzip ~300 MB/s)
        remaining = offset
        try:
            while remaining:
                got = len(self.lines.read(min(remaining, 8 * _BUFFER)))
                if not got:
                    raise SnapshotError(f"{self.path}: ends before the resume point (byte {offset:,})")
                remaining -= got
        except _decode_errors(self.compression) as exc:
            raise self._fail(exc, "data before the resume point") from exc


def _zip_member(archive: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) != 1:
        names = ", ".join(m.filename for m in members[:5]) or "nothing"
        raise SnapshotError(f"{path}: a zip must hold exactly one file, found {len(members)} ({names})")
    return members[0]


@contextmanager
def open_lines(path: Path) -> Iterator[LineStream]:
    """Open ``path`` for chunked line reading with bounded memory, whatever its compression."""
    try:
        compression = compression_of(path)
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    with ExitStack() as stack:
        raw = stack.enter_context(path.open("rb", buffering=_BUFFER))
        lines: IO[bytes]
        if compression == "plain":
            lines = raw
        elif compression == "gzip":
            lines = cast("IO[bytes]", stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")))
        elif compression == "zstd":
            lines = stack.enter_context(io.BufferedReader(_ZstdFrames(raw), _BUFFER))
        else:
            try:
                archive = stack.enter_context(zipfile.ZipFile(raw))
                lines = stack.enter_context(archive.open(_zip_member(archive, path)))
            except (zipfile.BadZipFile, NotImplementedError) as exc:
                raise SnapshotError(f"{path}: not a readable zip ({exc})") from exc
        yield LineStream(path, lines, raw, compression)
