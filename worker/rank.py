"""The entry point of a data parallel rank (python -m worker.rank ...; worker/rank_training.py does the work).

SIGTERM is blocked here, before any import starts a thread, so that every thread of the rank inherits the
mask (worker/drain.py hold_sigterm says why); rank 0 reads it as pending at its flushes.
"""
import signal

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

if __name__ == "__main__":
    import logging
    import os
    import sys

    from worker.rank_training import main

    code = main(sys.argv[1:])
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Without the interpreter's teardown: gloo's threads of a rank that left its group without a
    # barrier (after a failure, when a peer may be gone) aborted it in their destructors, and a
    # non-zero exit would have made the job's own error a lost attempt.
    os._exit(code)
