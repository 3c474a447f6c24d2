"""What the API would otherwise load on its first requests, loaded as it starts; then
everything loaded is frozen out of the garbage collector.

Why: with torch, scikit-learn and the rest loaded, the API holds about half a million
objects, and each full collection walked all of them: 200-300 ms during which the event
loop answers nothing. Under load (64 connections polling GET /v1/jobs/{id}) requests in
flight are promoted to the oldest generation fast enough for a full collection every
second or so: that was the read's p99 (about 0.3 s) and a quarter of its CPU. After
gc.freeze() a full collection walks only what was created since. Freezing before the
first requests' lazy imports would leave those (scikit-learn's builtin datasets alone
are 100 000 objects) to be walked again and again, so they are imported first.
"""
import gc
import logging

log = logging.getLogger(__name__)


def warm_up() -> None:
    """Imports what the first submissions would, then freezes the heap."""
    try:
        import sklearn.datasets  # noqa: F401  (the builtin datasets)

        from app.ml.warmup import run_tiny_network
        from app.queue import get_celery

        run_tiny_network()  # the pre-flight check's lazy imports
        get_celery().connection_for_write()  # the broker's transport module; connects to nothing
    except Exception:
        log.warning("the API's warm-up failed; freezing what is loaded", exc_info=True)
    gc.collect()
    gc.freeze()
    log.info("warm-up done: %d objects frozen out of the garbage collector", gc.get_freeze_count())
