"""The artifact store on an S3-compatible object store (ARTIFACT_URL=s3://bucket/prefix).

The same interface as app/storage.py's ArtifactStore. Writes are single PUTs, or for
big objects boto3's managed multipart upload, which makes the object appear only when it
completes (a failed one is aborted): a reader sees the previous object whole, or the new
one whole. ``local_path`` serves a local copy from app/filecache.py: keys under
``datasets/`` are content-addressed, so a copy of one is trusted as it is; any other key
(a checkpoint, weights, an export: written again under the same key) is looked up first
and its copy is kept under the object's ETag, so a changed object is fetched anew.
"""
import io
import os
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError

from app.filecache import LocalCache

IMMUTABLE_PREFIXES = ("datasets/",)  # content-addressed: a key's bytes never change
MISSING = {"404", "NoSuchKey", "NotFound"}
# Multipart above 64 MiB, 4 parts at a time: a 1 GB dataset goes up in parallel parts,
# and a small checkpoint in one PUT.
TRANSFER = TransferConfig(multipart_threshold=64 * 2**20, multipart_chunksize=64 * 2**20, max_concurrency=4)
DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


def make_client(endpoint_url: str = ""):
    """An S3 client; credentials and region from the standard AWS variables (or files)."""
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # Path-style addressing for a named endpoint: MinIO and other self-hosted stores serve
    # buckets under the path, not as subdomains. A few quick retries: the callers that must
    # ride out an outage (the worker's checkpoints and final weights) retry on their own.
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                    s3={"addressing_style": "path"} if endpoint else None)
    return boto3.session.Session().client("s3", endpoint_url=endpoint or None, region_name=region,
                                          config=config)


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in MISSING


def unreachable(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception that caused it, says the store could not be reached:
    no connection, a cut or timed-out one, or a 5xx (the store itself failing)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (BotoConnectionError, HTTPClientError)):
            return True
        if isinstance(exc, ClientError) and exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class S3Store:
    def __init__(self, bucket: str, prefix: str, cache: LocalCache, client=None):
        self.bucket, self.prefix, self.cache = bucket, prefix.strip("/"), cache
        self.client = client or make_client()

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _head(self, key: str) -> dict:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from None
            raise

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        return self._head(key)["ContentLength"]

    def open(self, key: str):
        """A streaming reader of the object's bytes (read(n), iter_chunks(), close())."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from None
            raise

    def get(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""
        with self.open(key) as body:
            return body.read()

    def local_path(self, key: str) -> Path:
        """A local file holding the object (FileNotFoundError when there is none)."""
        if key.startswith(IMMUTABLE_PREFIXES):
            path = self.cache.root / key
            if self.cache.use(path):
                return path
            size = self.size(key)
            return self.cache.fetch(path, size, lambda tmp: self.client.download_file(
                self.bucket, self._name(key), str(tmp), Config=TRANSFER))  # parallel ranged GETs
        head = self._head(key)
        path = self.cache.root / f"{key}@{head['ETag'].strip(chr(34))}"
        if self.cache.use(path):
            return path
        for stale in path.parent.glob(f"{Path(key).name}@*"):  # earlier versions of the object
            self.cache.drop(stale)
        return self.cache.fetch(path, head["ContentLength"], lambda tmp: self._download_version(key, head, tmp))

    def _download_version(self, key: str, head: dict, tmp: Path) -> None:
        """The version that was looked up, or a 412 (it changed since): a copy is never named
        after one version and holds another."""
        body = self.client.get_object(Bucket=self.bucket, Key=self._name(key), IfMatch=head["ETag"])["Body"]
        with body, open(tmp, "wb") as f:
            for chunk in body.iter_chunks(1 << 20):
                f.write(chunk)

    def put(self, key: str, data: bytes) -> None:
        self.client.upload_fileobj(io.BytesIO(data), self.bucket, self._name(key), Config=TRANSFER)

    def put_file(self, key: str, source: Path) -> None:
        """Stores a local file's bytes under ``key`` (the file is left where it is)."""
        self.client.upload_file(str(source), self.bucket, self._name(key), Config=TRANSFER)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
        copy = self.cache.root / key
        for path in [copy, *copy.parent.glob(f"{copy.name}@*")]:
            self.cache.drop(path)

    def _objects(self, prefix: str) -> list[dict]:
        folder = self._name(prefix.strip("/")) + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder)
        return [obj for page in pages for obj in page.get("Contents", [])]

    def keys(self, prefix: str) -> list[str]:
        """The keys under a folder (a job's jobs/<id>/), sorted; [] when there is none."""
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(obj["Key"][cut:] for obj in self._objects(prefix))

    def folder_bytes(self, prefix: str) -> int:
        """The bytes of the objects under a folder (a job's jobs/<id>/); 0 when there is none."""
        return sum(obj["Size"] for obj in self._objects(prefix))

    def delete_folder(self, prefix: str) -> None:
        """Removes a folder of artifacts (a job's jobs/<id>/) and everything in it."""
        names = [obj["Key"] for obj in self._objects(prefix)]
        for i in range(0, len(names), DELETE_BATCH):
            batch = [{"Key": name} for name in names[i:i + DELETE_BATCH]]
            failed = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if failed.get("Errors"):
                raise OSError(f"could not delete {len(failed['Errors'])} objects under {prefix}: "
                              f"{failed['Errors'][0]}")
        self.cache.drop_folder(self.cache.root / prefix.strip("/"))
