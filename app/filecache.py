"""Local copies of an object store's objects, for readers that need a file (memory maps, FileResponse).

A copy is downloaded to a temp file beside its place, checked against the object's size,
and renamed there: a reader sees a whole copy or none, even with several processes of one
machine fetching the same object. The folder is bounded: past ``max_bytes`` the least
recently used copies go (their mtime is touched on each use). Removing a copy another
process has open or memory-mapped is safe on POSIX: its data lives until that process lets go.
"""
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 3600  # a temp file this old was left by a process that died mid-download


class LocalCache:
    def __init__(self, root: Path, max_bytes: int):
        self.root, self.max_bytes = Path(root), max_bytes

    def use(self, path: Path) -> Path | None:
        """The copy at ``path`` if it is there, marked as just used; None otherwise."""
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def fetch(self, path: Path, size: int, download: Callable[[Path], None]) -> Path:
        """Downloads a copy to ``path`` through ``download(temp_path)``; checks it holds ``size`` bytes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
        os.close(fd)
        try:
            download(Path(tmp))
            got = os.path.getsize(tmp)
            if got != size:
                raise OSError(f"incomplete download of {path.name}: {got} of {size} bytes")
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        self.evict(keep=path)
        return path

    def drop(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def drop_folder(self, folder: Path) -> None:
        if folder.is_dir():
            for p in sorted(folder.rglob("*"), reverse=True):
                p.rmdir() if p.is_dir() else p.unlink(missing_ok=True)
            folder.rmdir()

    def evict(self, keep: Path) -> None:
        """Removes the least recently used copies until the folder holds at most max_bytes."""
        if not self.max_bytes or not self.root.is_dir():
            return
        now, copies = time.time(), []
        for p in self.root.rglob("*"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue  # another process removed it meanwhile
            if not p.is_file():
                continue
            if p.name.startswith(TMP_PREFIX):
                if now - st.st_mtime > STALE_TMP_SECONDS:
                    p.unlink(missing_ok=True)
                continue
            copies.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in copies)
        for _, size, p in sorted(copies, key=lambda c: c[0]):
            if total <= self.max_bytes:
                break
            if p != keep:
                p.unlink(missing_ok=True)
                total -= size
                log.info("cache: removed %s (%d bytes), least recently used", p, size)
