"""A multipart dataset upload streamed to a file under DATA_DIR as it arrives, never held in memory.

Starlette's form parser spools a file part to an unnamed temp file that the route would then read
back whole; this parser (python-multipart's streaming parser, as Starlette's own) writes the
part named "file" straight to a named file that the ingestion reads in blocks, counting its
bytes against MAX_UPLOAD_BYTES as they come. Other fields are small and kept (Starlette's
limits: 1,000 fields, 1 MiB a field).
"""
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from anyio import to_thread
from python_multipart.multipart import MultipartParser, parse_options_header
from python_multipart.exceptions import FormParserError
from starlette.requests import Request

from app.config import get_settings
from app.errors import ApiError

FILE_FIELD = "file"
MAX_FIELDS = 1000
MAX_FIELD_BYTES = 1 << 20
WRITE_BYTES = 1 << 20  # file bytes gathered before one write, done off the event loop


def spool_dir() -> Path:
    """Where uploads and ingestion's working files go: on DATA_DIR's disk, sized for them."""
    path = get_settings().data_dir / "ingest"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Spooled:
    """The form's fields (name -> values) and the file part, on disk at ``path`` (None: no file part)."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    path: Path | None = None
    filename: str = ""
    size: int = 0

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _Parts:
    """python-multipart's callbacks: headers to a part's name, its data to a field or the file."""

    def __init__(self, spooled: Spooled, limit: int):
        self.spooled, self.limit = spooled, limit
        self.header_name = self.header_value = b""
        self.disposition = b""
        self.name, self.is_file, self.data = "", False, bytearray()
        self.pending, self.file, self.count = bytearray(), None, 0

    def on_part_begin(self):
        self.disposition, self.data, self.is_file = b"", bytearray(), False

    def on_header_field(self, data, start, end):
        self.header_name += data[start:end]

    def on_header_value(self, data, start, end):
        self.header_value += data[start:end]

    def on_header_end(self):
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name = self.header_value = b""

    def on_headers_finished(self):
        _, options = parse_options_header(self.disposition)
        if b"name" not in options:
            raise ApiError(400, 'the multipart body cannot be read: a part has no Content-Disposition "name"', "body")
        self.name = options[b"name"].decode("utf-8", "replace")
        self.is_file = b"filename" in options
        if self.is_file and self.name == FILE_FIELD and self.spooled.path is None:
            self.spooled.filename = options[b"filename"].decode("utf-8", "replace")
            fd, name = tempfile.mkstemp(dir=spool_dir(), prefix="upload-")
            self.file, self.spooled.path = os.fdopen(fd, "wb"), Path(name)
        elif not self.is_file:
            self.count += 1
            if self.count > MAX_FIELDS:
                raise ApiError(400, f"the multipart body cannot be read: Too many fields. Maximum number "
                                    f"of fields is {MAX_FIELDS}.", "body")

    def on_part_data(self, data, start, end):
        if self.is_file:
            if self.name == FILE_FIELD and self.file is not None and not self.file.closed:
                self.pending += data[start:end]
                self.spooled.size += end - start
                if self.spooled.size > self.limit:
                    raise ApiError(413, f"the file is over the limit of {self.limit:,} bytes (MAX_UPLOAD_BYTES)", "file")
            return  # another file part: not ours to keep
        if len(self.data) + end - start > MAX_FIELD_BYTES:
            raise ApiError(400, f"the multipart body cannot be read: field {self.name!r} is over 1 MiB", "body")
        self.data += data[start:end]

    def on_part_end(self):
        if not self.is_file:
            self.spooled.fields.setdefault(self.name, []).append(self.data.decode("utf-8", "replace"))


async def spool(request: Request) -> Spooled:
    """Reads the multipart body, the file part to disk; raises ApiError (400, 413) naming the field."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    if b"boundary" not in params:
        raise ApiError(400, "the multipart body cannot be read: no boundary in its Content-Type", "body")
    spooled = Spooled()
    parts = _Parts(spooled, get_settings().max_upload_bytes)
    callbacks = {n: getattr(parts, n) for n in ("on_part_begin", "on_header_field", "on_header_value",
                                                "on_header_end", "on_headers_finished", "on_part_data", "on_part_end")}
    try:
        parser = MultipartParser(params[b"boundary"], callbacks)
        async for chunk in request.stream():
            parser.write(chunk)
            if len(parts.pending) >= WRITE_BYTES:
                await _flush(parts)
        parser.finalize()
        await _flush(parts)
        if parts.file is not None:
            await to_thread.run_sync(parts.file.close)
    except BaseException as exc:
        if parts.file is not None:
            parts.file.close()
        spooled.remove()
        if isinstance(exc, FormParserError):
            raise ApiError(400, f"the multipart body cannot be read: {exc}", "body") from None
        raise
    return spooled


async def _flush(parts: _Parts) -> None:
    if parts.pending and parts.file is not None:
        data, parts.pending = bytes(parts.pending), bytearray()
        await to_thread.run_sync(parts.file.write, data)
