"""app/logs.py: the job's fields on the lines inside its context, and only there, in both formats."""
import io
import json
import logging
import threading

import pytest

from app.logs import JobFields, add_job_fields, formatter, job_context, job_fields


@pytest.fixture
def capture():
    """A logger writing through the formatter under test, as configure() sets the root up."""
    def make(log_format: str):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter(log_format))
        handler.addFilter(JobFields())
        logger = logging.getLogger(f"test_logs.{log_format}")
        logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
        return logger, stream
    return make


def test_json_lines_carry_the_jobs_fields_inside_its_context_only(capture):
    log, stream = capture("json")
    log.info("before")
    with job_context(job_id="job_1", worker="host:1"):
        log.info("claimed %s", "job_1")
        add_job_fields(attempt=2, tenant="tn_a")
        log.warning("training")
    log.info("after")
    before, claimed, training, after = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {"job_id", "tenant", "attempt", "worker"}.isdisjoint(before) and "job_id" not in after
    assert claimed["message"] == "claimed job_1" and claimed["job_id"] == "job_1" and "attempt" not in claimed
    assert {k: training[k] for k in ("job_id", "tenant", "attempt", "worker", "level", "logger")} == {
        "job_id": "job_1", "tenant": "tn_a", "attempt": 2, "worker": "host:1", "level": "WARNING",
        "logger": "test_logs.json"}
    assert training["timestamp"].endswith("+00:00")


def test_text_lines_append_the_fields(capture):
    log, stream = capture("text")
    with job_context(job_id="job_1", attempt=1):
        log.info("training")
    log.info("idle")
    training, idle = stream.getvalue().splitlines()
    assert training.endswith("INFO test_logs.text: training [job_id=job_1 attempt=1]")
    assert idle.endswith("INFO test_logs.text: idle")


def test_a_thread_starts_without_the_fields_and_takes_them_explicitly():
    seen = {}
    with job_context(job_id="job_1"):
        fields = job_fields()

        def work():
            seen["bare"] = job_fields()
            with job_context(**fields):
                seen["given"] = job_fields()

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert seen == {"bare": {}, "given": {"job_id": "job_1"}} and job_fields() == {}
