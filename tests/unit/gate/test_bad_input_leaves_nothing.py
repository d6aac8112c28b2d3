"""Bad input through the gate's real path (store → claim → decode → record → destroy), with the
fuzzing corpus as the media: every job is decided, and afterwards nothing of any input is left in
the media folder, in /tmp or in the logs (each input carries tests/fuzzing.CANARY). A stand-in
face finder; the decoders, the store and the pipeline are the real ones."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest

from consent_service import db
from consent_service.crypto import StaticKeys
from consent_service.gate import pipeline, tasks
from consent_service.gate.decisions import Signing
from consent_service.gate.models import GateJob
from consent_service.gate.service import Upload, submit_job
from consent_service.keyring import Pseudonyms
from consent_service.providers.models import Provider
from consent_service.providers.service import create_provider
from consent_service.tokens.service import DecisionSigner, KeyRing, generate_key
from consent_service.vocabulary import JobStatus, Operation, Role
from tests import fuzzing

# A seed of each kind, the polyglots and the data reference (the full corpus is fuzzed on its
# own in tests/unit/media/test_fuzz_decoders.py; here every item costs a whole job).
SEEDS = {
    "baseline.jpg",
    "lzw.tiff",
    "jpeg-zip.jpg",
    "html-behind-jpeg-magic.jpg",
    "mpeg4.mkv",
    "dref.mov",
    "tone.wav",
}


@pytest.fixture
def inputs(tmp_path) -> list[bytes]:
    """SEEDS and every kept finding of every target, each holding the canary."""
    files = []
    for target in fuzzing.TARGETS:
        seeds = fuzzing.write_seeds(target, tmp_path / "seeds" / target)
        files += [p for p in seeds if p.name in SEEDS]
        files += fuzzing.corpus(target)
    return [
        p.read_bytes() if p.is_relative_to(tmp_path) else p.read_bytes() + fuzzing.CANARY
        for p in files
    ]


def test_bad_input_is_decided_and_leaves_nothing_behind(
    worker_context, store, matching, envelope, inputs, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    started = time.time() - 1
    signer = DecisionSigner(KeyRing((generate_key(),)), "consent-service", timedelta(days=1))
    signing = Signing(
        StaticKeys.single(b"a" * 32),
        signer,
        Pseudonyms.single(b"p" * 32),
        envelope,
        timedelta(days=7),
    )
    with db.unit_of_work() as s:
        provider_id = create_provider(s, "acme").id
    job_ids = []
    for n, data in enumerate(inputs):
        with db.unit_of_work() as s:
            provider = s.get(Provider, provider_id)
            upload = Upload(Role.SOURCE, f"{n}.bin", data)
            job, _ = submit_job(s, store, provider, Operation.FACE_SWAP, [upload])
            job_ids.append(job.id)
    assert any(store.root.iterdir())  # the media were stored (sealed) while they waited

    for job_id in job_ids:
        tasks.decide(
            job_id, pipeline.Delivery(None, timedelta(minutes=5)), store, matching, None, signing, 3
        )

    with db.unit_of_work() as s:
        statuses = {s.get(GateJob, job_id).status for job_id in job_ids}
    assert statuses == {JobStatus.DECIDED.value}
    assert list(store.root.iterdir()) == []  # every medium destroyed with its decision
    assert not fuzzing.canary_in(caplog.text)
    assert fuzzing.leftovers(fuzzing.temp_roots(), started, skip=[tmp_path / "seeds"]) == []
