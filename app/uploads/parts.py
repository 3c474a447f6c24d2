"""An upload's parts: how a file is cut into them, where they live in the artifact store, and one
part's body received to a local temp file in bounded pieces, hashed as it arrives."""
import base64
import binascii
import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from anyio import to_thread
from starlette.requests import ClientDisconnect, Request

from app.config import Settings, get_settings
from app.errors import ApiError

# S3's own limit: at most this many parts, so a larger file gets larger parts.
MAX_PARTS = 10_000
# What the API holds of a part's body at once before writing it out (in a thread, off the loop).
BUFFER_BYTES = 1 << 20
SHA256_HEADER = "x-trainyard-sha256"
MD5_HEADER = "content-md5"


def part_size_for(size: int, settings: Settings | None = None) -> int:
    """The part size of a file of ``size`` bytes: UPLOAD_PART_BYTES, more when that would take over MAX_PARTS."""
    settings = settings or get_settings()
    return max(settings.upload_part_bytes, math.ceil(size / MAX_PARTS))


def max_part_bytes(settings: Settings | None = None) -> int:
    """The largest part any upload may have (of a file at MAX_UPLOAD_BYTES): app/request_limits.py's bound."""
    settings = settings or get_settings()
    return part_size_for(settings.max_upload_bytes, settings)


def part_count(size: int, part_size: int) -> int:
    return math.ceil(size / part_size)


def expected_size(*, size: int, part_size: int, n: int) -> int:
    """Part ``n``'s size (from 1): ``part_size``, except the last, which holds what is left."""
    count = part_count(size, part_size)
    return part_size if n < count else size - part_size * (count - 1)


def folder(upload_id: str) -> str:
    """Where every part of an upload lives; removed whole on complete, abort and expiry."""
    return f"uploads/{upload_id}"


def part_key(upload_id: str, n: int, sha256: str) -> str:
    """A part's object, named by its content too: a re-sent part with other bytes never overwrites
    the object that the part's recorded row still names (the old one goes after the new row commits)."""
    return f"{folder(upload_id)}/part-{n:05d}-{sha256[:16]}"


@dataclass(frozen=True)
class Checksums:
    """What the client said the part's bytes hash to (either may be absent)."""

    sha256: str | None = None
    md5: bytes | None = None


def checksums_of(headers) -> Checksums:
    """The part's checksum headers, refused when malformed (before the body is read)."""
    sha = headers.get(SHA256_HEADER)
    if sha is not None:
        sha = sha.strip().lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ApiError(422, "must be the part's SHA-256 as 64 hex digits", "x-trainyard-sha256")
    md5 = headers.get(MD5_HEADER)
    if md5 is not None:
        try:
            md5 = base64.b64decode(md5.strip(), validate=True)
        except (binascii.Error, ValueError):
            md5 = b""
        if len(md5) != 16:
            raise ApiError(422, "must be the part's MD5 digest in base64 (RFC 1864), 24 characters", "Content-MD5")
    return Checksums(sha256=sha, md5=md5)


def check_declared_length(headers, *, n: int, expected: int) -> None:
    """A Content-Length that is not the part's size is refused before a byte of the body is read."""
    declared = headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) != expected:
        raise ApiError(422, f"part {n} must be {expected:,} bytes; Content-Length says {int(declared):,}",
                       "Content-Length")


@dataclass(frozen=True)
class Received:
    """A part's body in a local temp file (the caller removes it), with its size and digests."""

    path: Path
    size: int
    sha256: str
    md5: bytes | None


async def receive(request: Request, *, n: int, expected: int, md5: bool) -> Received:
    """Streams the body to a temp file, at most BUFFER_BYTES held at once; a 422 once it is not ``expected`` bytes."""
    fd, name = tempfile.mkstemp(prefix="trainyard-part-")
    path, sink = Path(name), _Sink(os.fdopen(fd, "wb"), md5)
    try:
        size, pending = 0, bytearray()
        async for chunk in request.stream():
            size += len(chunk)
            if size > expected:
                raise ApiError(422, f"part {n} must be {expected:,} bytes; the body is longer", "body")
            pending += chunk
            if len(pending) >= BUFFER_BYTES:
                await to_thread.run_sync(sink.write, bytes(pending))
                pending.clear()
        await to_thread.run_sync(sink.write, bytes(pending))
        sink.file.close()
        if size != expected:
            raise ApiError(422, f"part {n} must be {expected:,} bytes; the body has {size:,}", "body")
        return Received(path=path, size=size, sha256=sink.sha.hexdigest(), md5=sink.md5 and sink.md5.digest())
    except BaseException as exc:
        sink.file.close()
        path.unlink(missing_ok=True)
        if isinstance(exc, ClientDisconnect):
            raise ApiError(400, f"the client disconnected before sending all of part {n}", "body") from None
        raise


class _Sink:
    def __init__(self, file, md5: bool):
        self.file, self.sha, self.md5 = file, hashlib.sha256(), hashlib.md5() if md5 else None

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.sha.update(data)
        if self.md5 is not None:
            self.md5.update(data)


def verify(received: Received, wanted: Checksums, *, n: int) -> None:
    """A 422 naming the header whose checksum the received bytes do not match."""
    if wanted.sha256 is not None and wanted.sha256 != received.sha256:
        raise ApiError(422, f"part {n}'s bytes hash to SHA-256 {received.sha256}, not the header's "
                            f"{wanted.sha256}: it was damaged on the way; send it again", "x-trainyard-sha256")
    if wanted.md5 is not None and wanted.md5 != received.md5:
        got = base64.b64encode(received.md5 or b"").decode()
        raise ApiError(422, f"part {n}'s bytes hash to MD5 {got}, not the header's: it was damaged on the way; "
                            "send it again", "Content-MD5")
