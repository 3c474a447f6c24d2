"""Every setting Trainyard reads from the environment, in one place."""
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # The embedded default needs no server: a SQLite file and a folder broker.
    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    artifact_dir: Path | None = None
    # Where datasets, weights, checkpoints and exports live: file:///abs/folder (empty: the
    # folder ARTIFACT_DIR, or DATA_DIR/artifacts) or s3://bucket/prefix on any S3-compatible
    # store, so API and workers on different machines share it (app/s3store.py). Its endpoint:
    # S3_ENDPOINT_URL, else boto3's AWS_ENDPOINT_URL; credentials: the standard AWS variables.
    artifact_url: str = ""
    s3_endpoint_url: str = ""
    # An s3:// store's local copies of objects that readers need as files (memory maps, file
    # responses): least recently used ones are removed past CACHE_MAX_BYTES (0: no bound).
    cache_dir: Path | None = None
    cache_max_bytes: int = 20 * 2**30
    # How long a worker retries storing a finished job's weights while the store is down
    # before it gives the attempt up (the job is retried, up to MAX_ATTEMPTS).
    store_retry_seconds: float = 120
    queue_name: str = "trainyard"

    # Limits that keep one request from swamping the service.
    # A file upload, streamed to DATA_DIR as it arrives and parsed in blocks: the API's memory
    # does not grow with it (docs/datasets.md), so the limit is the disk's, not the RAM's.
    max_upload_bytes: int = 10 * 2**30
    max_inline_rows: int = 10_000
    # Any body that is not a multipart upload (a job spec, inline rows), counted as it
    # arrives: a 200 MB JSON body held 9.2 GB of Python objects before it was refused.
    max_json_bytes: int = 32 * 1024 * 1024
    # Nesting of a JSON body, checked on its bytes before any parser recurses into it
    # (10,000 levels overflowed Python's stack). A spec needs about 6 plus 2 per residual block.
    max_json_depth: int = 64
    # What one upload may unpack to: an .npz's arrays (their declared sizes, read from the
    # zip directory and the .npy headers before any is decompressed; a 3.1 MB file held
    # 3.2 GB of zeros), or a table's cells at 4 bytes each (float32), counted as they stream.
    # A CSV's (or Parquet or Arrow file's) header may have this many columns.
    max_dataset_bytes: int = 10 * 2**30
    max_csv_columns: int = 10_000
    # Resumable uploads (/v1/uploads, app/uploads/): a file goes in parts of this many bytes
    # (more when it would take over 10,000 parts), each a request a dropped connection costs
    # at most. An upload no part has reached for UPLOAD_EXPIRY_HOURS expires; the workers'
    # reaper sweep removes it and its parts.
    upload_part_bytes: int = Field(default=16 * 2**20, ge=1)
    upload_expiry_hours: float = Field(default=24, gt=0)
    max_parameters: int = 50_000_000
    max_epochs: int = 10_000
    max_steps: int = 10_000_000
    max_layers: int = 200
    # The most members one study may run (variants x grid points x seeds, or a search's trials).
    max_study_members: int = 200
    # The pre-flight estimate of training memory (parameters, gradients, optimizer state, activations).
    max_memory_bytes: int = 8 * 2**30

    # Per-tenant quotas (app/quotas/; `trainyard tenants set-quota` overrides them per tenant;
    # 0: no limit). Jobs: a tenant's queued, retrying and running jobs outside studies, checked
    # at submit (429). Running jobs: more wait in the queue, they are not refused. Study members:
    # a tenant's unfinished studies' members not yet ended, checked at study create (429).
    # Stored bytes: datasets plus job artifacts, checked before an upload is stored (413).
    quota_jobs: int = 1000
    quota_running_jobs: int = 0
    quota_study_members: int = 2000
    quota_stored_bytes: int = 0
    # Requests per API key (a `limits` string: "600/minute", "10/second;600/minute"); empty or
    # 0: off. Counted in Redis when the broker is Redis (one count for all API processes), else in
    # this process's memory; RATE_LIMIT_STORAGE_URL names another `limits` storage.
    rate_limit: str = ""
    rate_limit_storage_url: str = ""

    # A running job renews its lease this often; a stale lease means a lost worker.
    lease_seconds: float = 60
    heartbeat_seconds: float = 5
    # Workers sweep for jobs whose worker died this often; a job is given up after
    # max_attempts lost workers rather than crashing workers forever.
    reaper_interval_seconds: float = 15
    # A running job saves a checkpoint at least this often (and every training.checkpoint_every
    # epochs): a lost worker costs at most this much training.
    checkpoint_seconds: float = 120
    # Epoch checkpoints closer than this to the last are skipped (tiny epochs, many epochs).
    checkpoint_min_gap_seconds: float = 2
    # How long a worker keeps retrying a database write before it gives the job up.
    db_retry_seconds: float = 120
    # A job waiting this long since its message was sent is sent again (the broker may have
    # lost it, e.g. a Redis restart without persistence); the claim ignores duplicates.
    resend_after_seconds: float = 300
    # The longest a job may train (training.max_seconds may ask for less).
    max_job_seconds: float = 24 * 3600
    max_attempts: int = 3
    # A worker's training process trains job after job (a crash or OOM kill there still leaves
    # the worker up, and the job's memory is handed back after each job, worker/memory.py);
    # it is replaced after this many jobs (0: never; 1: a fresh process per job, which costs
    # each job a process start), or after a job that left it holding more than this much
    # resident memory.
    training_process_max_jobs: int = 0
    training_process_max_memory_mb: int = 4096
    # The memory a worker may give a job's data (0: half the machine's RAM). Data over a third of
    # it (its in-memory copies) is memory-mapped and gathered batch by batch instead of loaded
    # (app/datasets/data_path.py); the pre-flight reports which. Set it alike on API and workers.
    worker_memory_bytes: int = 0
    # Metrics are written in batches: at most one commit per this many seconds.
    metrics_flush_seconds: float = 1.0
    # The training step's direct kernel calls (worker/training/direct.py): the same bits as
    # the ordinary calls, without PyTorch's Python around them. Off: model(xb), loss.backward(),
    # optimizer.step(), optimizer.zero_grad(set_to_none=True).
    direct_kernels: bool = True
    # A study's packable members (app/studies/packing.py) train together in one process, at most
    # this many at once (1: every member alone, as before packing).
    pack_max_members: int = 64

    # Job event streams (SSE). On SQLite a shared tail per watched job polls this often;
    # on PostgreSQL it wakes on NOTIFY and polls only as a safety net.
    stream_poll_seconds: float = 0.2
    stream_fallback_poll_seconds: float = 2.0
    # Keep-alive comments, so proxies and clients can tell a quiet job from a dead link.
    stream_ping_seconds: float = 15
    # Trained models kept loaded in the API process for POST /v1/jobs/{id}/predict.
    predict_cache_size: int = 8
    max_predict_rows: int = 10_000
    # An API process remembers a live key's tenant this long, so most requests skip the key
    # lookup; a revoked key keeps working for at most this long. 0 looks every key up.
    auth_cache_seconds: float = 5
    # A dashboard sign-in lasts this long (and only while its API key is live).
    session_hours: float = 12

    # Log lines: text for a terminal, json (one object a line, with job_id, tenant, attempt
    # and worker on a job's lines) for a log store; docker-compose.yml sets json (app/logs.py).
    log_format: Literal["text", "json"] = "text"
    # GET /metrics: open when empty (Prometheus scrapes it inside the network, and it shows
    # counts only); when set, a scrape must send 'Authorization: Bearer <METRICS_TOKEN>'.
    metrics_token: str = ""

    # Webhooks (app/webhooks/). A webhook's URL must resolve to public addresses only, checked at
    # create and at every send (SSRF: a receiver is any URL a tenant names); 1 allows loopback,
    # private and link-local ones (a receiver on this host or network, as the tests run).
    webhook_allow_private: bool = False
    # A send waits this long to connect and for each read of the answer; then it counts as failed.
    webhook_timeout_seconds: float = 10
    # Each worker's sender looks for due deliveries this often, and sends up to this many at
    # once (one per webhook: a slow or dead receiver holds one thread, never the others).
    webhook_poll_seconds: float = 1.0
    webhook_sender_threads: int = 8

    worker_id: str = Field(default="", description="Name a worker reports; host:pid by default")
    # Workers report to the registry (GET /v1/workers) every HEARTBEAT_SECONDS; one not
    # heard from for this long is offline, and jobs needing its kind show why they wait.
    worker_offline_seconds: float = 20

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'trainyard.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    def queue_for(self, kind: str) -> str:
        """The broker queue of a kind of worker: gpu or cpu."""
        return f"{self.queue_name}.{kind}"

    @property
    def broker_folder(self) -> Path:
        return (self.data_dir / "broker").resolve()

    @property
    def resolved_artifact_dir(self) -> Path:
        return (self.artifact_dir or self.data_dir / "artifacts").resolve()

    @property
    def resolved_artifact_url(self) -> str:
        return self.artifact_url or self.resolved_artifact_dir.as_uri()

    @property
    def resolved_cache_dir(self) -> Path:
        return (self.cache_dir or self.data_dir / "cache").resolve()

    @field_validator("artifact_url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if url and not (url.startswith("file:///") or (url.startswith("s3://") and len(url) > 5)):
            raise ValueError(f"ARTIFACT_URL must be file:///absolute/folder or s3://bucket[/prefix], not {url!r}")
        return url


@lru_cache
def get_settings() -> Settings:
    return Settings()
