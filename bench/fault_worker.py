"""A Celery worker with two faults planted, for bench/faults.py and tests/e2e/test_fault_table.py:

- media carrying POISON kill the process that decodes them, on every attempt (a decoder crash
  that takes the process down: the job must end `failed` after at most `job_max_attempts`);
- an enrollment whose media carry SLOW takes FAULT_SLOW_SECONDS (default 20) to analyse (a slow
  enrollment the stale-work sweep must not fail).

Run as `python bench/fault_worker.py <celery arguments after "celery">`: the argv of
`consent_service.processes.worker_command` with this file in place of `-m celery`."""

from __future__ import annotations

import os
import signal
import sys
import time

POISON = b"FAULT:POISON"
SLOW = b"FAULT:SLOW"


def plant() -> None:
    from consent_service.biometrics import enrollment
    from consent_service.gate import pipeline

    faces_in, analyse = pipeline.faces_in, enrollment.analyse

    def poisoned_faces_in(data, matching):
        if POISON in data:
            os.kill(os.getpid(), signal.SIGKILL)  # the decoder takes its process down
        return faces_in(data, matching)

    def slow_analyse(media, kind, attempts, max_attempts):
        if media and any(SLOW in m for m in media):
            time.sleep(float(os.environ.get("FAULT_SLOW_SECONDS", "20")))
        return analyse(media, kind, attempts, max_attempts)

    pipeline.faces_in = poisoned_faces_in
    enrollment.analyse = slow_analyse


if __name__ == "__main__":
    plant()  # before the pool forks: every child inherits the planted faults
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[1:]]
    sys.exit(main())
