"""Templates at rest: sealed, bound to their row; every change logged; and the worker's gallery
built from them, kept current from the log, sealed for the next worker."""

from __future__ import annotations

import secrets

import numpy as np
import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import update
from sqlmodel import select

from consent_service.biometrics import service as biometrics_service
from consent_service.biometrics.gallery import shard_of
from consent_service.biometrics.matching import identify
from consent_service.biometrics.models import (
    BiometricTemplate,
    GalleryVersion,
    TemplateChange,
    TemplateOp,
)
from consent_service.biometrics.service import GalleryIndex, open_template
from consent_service.crypto import Envelope
from consent_service.vocabulary import Modality

MODEL = "face_recognition/dlib-resnet-v1"


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, 128)


@pytest.fixture
def stored(session, envelope, factories):
    """Two subjects' templates, sealed and committed; returns {template id: vector}."""
    vectors = {}
    for seed in (1, 2, 3):
        template = factories.BiometricTemplateFactory(model=MODEL, sealed=(envelope, vector(seed)))
        vectors[template.id] = vector(seed)
    session.commit()
    return vectors


def test_sealed_template_opens_to_the_same_vector(reopen, envelope, stored):
    with reopen() as s:
        for template in s.exec(select(BiometricTemplate)):
            opened = open_template(envelope, template)
            assert np.array_equal(opened, stored[template.id])


def test_no_float_of_any_vector_is_in_the_stored_bytes(reopen, stored):
    with reopen() as s:
        rows = list(s.exec(select(BiometricTemplate)))
    assert len(rows) == len(stored)
    for row in rows:
        blob = row.ciphertext + row.wrapped_key
        for v in stored.values():
            for dtype in ("<f8", ">f8", "<f4"):
                raw = np.asarray(v, dtype=dtype)
                assert raw.tobytes()[:64] not in blob
                assert not any(x.tobytes() in blob for x in raw)


def test_database_dump_holds_no_vector(engine, stored):
    raw = engine.raw_connection()
    try:
        dump = "\n".join(raw.driver_connection.iterdump()).lower()
    finally:
        raw.close()
    assert "biometric_template" in dump
    for v in stored.values():
        assert np.asarray(v, "<f8").tobytes()[:16].hex() not in dump


def _swap(session, a: BiometricTemplate, b: BiometricTemplate, columns: tuple[str, ...]) -> None:
    values = {t.id: {c: getattr(t, c) for c in columns} for t in (a, b)}
    for src, dst in ((a, b), (b, a)):
        session.execute(
            update(BiometricTemplate).where(BiometricTemplate.id == dst.id).values(values[src.id])
        )
    session.commit()


@pytest.mark.parametrize(
    "columns", [("ciphertext", "wrapped_key"), ("ciphertext",), ("wrapped_key",)]
)
def test_ciphertexts_swapped_between_rows_do_not_decrypt(reopen, envelope, stored, columns):
    with reopen() as s:
        a, b = list(s.exec(select(BiometricTemplate)))[:2]
        ids = [a.id, b.id]
        _swap(s, a, b, columns)
    with reopen() as s:
        swapped = [s.get(BiometricTemplate, i) for i in ids]
        for template in swapped:
            with pytest.raises(InvalidTag):
                open_template(envelope, template)
        # Put back, both open again: the failure was the swap, not the rows.
        _swap(s, *swapped, columns)
        for template in swapped:
            s.refresh(template)
            assert np.array_equal(open_template(envelope, template), stored[template.id])


def test_template_moved_to_another_subject_does_not_decrypt(reopen, envelope, stored, make_subject):
    other = make_subject()
    with reopen() as s:
        template = s.exec(select(BiometricTemplate)).first()
        s.execute(
            update(BiometricTemplate)
            .where(BiometricTemplate.id == template.id)
            .values(subject_id=other.id)
        )
        s.commit()
        s.refresh(template)
        with pytest.raises(InvalidTag):
            open_template(envelope, template)


def test_wrong_key_encryption_key_does_not_decrypt(reopen, stored):
    stranger = Envelope(secrets.token_bytes(32))
    with reopen() as s:
        template = s.exec(select(BiometricTemplate)).first()
        with pytest.raises(InvalidTag):
            open_template(stranger, template)


class TestGalleryIndex:
    def test_gallery_holds_every_template_of_the_model(self, session, envelope, stored):
        gallery = GalleryIndex(envelope, MODEL).current(session, Modality.FACE)
        assert len(gallery) == len(stored)
        for template_id, v in stored.items():
            subject_id = session.get(BiometricTemplate, template_id).subject_id
            assert identify(gallery, v, 0.01, 0.0).subject_id == subject_id

    def test_templates_of_another_model_are_left_out(self, session, envelope, stored):
        assert len(GalleryIndex(envelope, "some-other-model").current(session, Modality.FACE)) == 0

    def test_gallery_applies_only_the_changes_logged_since(
        self, session, envelope, stored, factories, opened
    ):
        index = GalleryIndex(envelope, MODEL)
        first = index.current(session, Modality.FACE)
        assert index.current(session, Modality.FACE) is first  # nothing logged since
        seq, size = first.seq, len(first)
        opened.clear()

        newcomer = factories.SubjectFactory()
        factories.BiometricTemplateFactory(
            subject=newcomer, model=MODEL, sealed=(envelope, vector(99))
        )
        session.commit()

        second = index.current(session, Modality.FACE)
        assert second is first and second.seq == seq + 1
        assert len(second) == size + 1
        assert identify(second, vector(99), 0.01, 0.0).subject_id == newcomer.id
        assert len(opened) == 1  # the new template only, not the whole gallery again

    def test_a_deleted_template_leaves_the_gallery(self, session, envelope, stored):
        index = GalleryIndex(envelope, MODEL)
        gallery = index.current(session, Modality.FACE)
        template_id, v = next(iter(stored.items()))
        owner = session.get(BiometricTemplate, template_id).subject_id
        assert identify(gallery, v, 0.01, 0.0).subject_id == owner
        session.delete(session.get(BiometricTemplate, template_id))
        session.commit()
        assert index.current(session, Modality.FACE) is gallery
        assert len(gallery) == len(stored) - 1
        assert identify(gallery, v, 0.01, 0.0).subject_id is None

    def test_every_change_is_logged_in_its_own_transaction(self, session, envelope, stored):
        changes = session.exec(select(TemplateChange).order_by(TemplateChange.seq)).all()
        assert [(c.seq, c.op, c.template_id) for c in changes] == [
            (i, TemplateOp.ADD, t) for i, t in enumerate(stored, start=1)
        ]
        assert {c.model for c in changes} == {MODEL}
        head = session.get(GalleryVersion, "face").version
        session.delete(session.get(BiometricTemplate, next(iter(stored))))
        session.flush()
        session.rollback()  # the deletion never happened: neither did its log row
        assert len(session.exec(select(TemplateChange)).all()) == len(stored)
        session.expire_all()
        assert session.get(GalleryVersion, "face").version == head

    @pytest.mark.parametrize("seed", range(3))
    def test_applying_the_log_equals_loading_afresh(
        self, seed, session, envelope, factories, make_subject
    ):
        rng = np.random.default_rng(seed)
        index = GalleryIndex(envelope, MODEL)
        people = [make_subject() for _ in range(6)]
        for step in range(8):
            for _ in range(int(rng.integers(0, 4))):
                factories.BiometricTemplateFactory(
                    subject=people[rng.integers(len(people))],
                    model=MODEL,
                    sealed=(envelope, vector(int(rng.integers(10_000)))),
                )
            rows = session.exec(select(BiometricTemplate)).all()
            for row in rows:
                if rng.random() < 0.2:
                    session.delete(row)
            session.commit()
            if step % 3 == 0:
                index.current(session, Modality.FACE)  # a worker catching up now and then
        kept = index.current(session, Modality.FACE)
        fresh = GalleryIndex(envelope, MODEL).current(session, Modality.FACE)
        assert kept.seq == fresh.seq
        for mine, theirs in zip(kept.arrays(), fresh.arrays(), strict=True):
            assert np.array_equal(np.sort(mine, axis=0), np.sort(theirs, axis=0))


class TestSnapshots:
    """A worker seals its gallery for the next one on the host, which then decrypts nothing."""

    def test_a_new_worker_opens_the_snapshot_and_decrypts_nothing(
        self, session, envelope, stored, tmp_path, opened
    ):
        key = secrets.token_bytes(32)
        first = GalleryIndex(envelope, MODEL, key, tmp_path).current(session, Modality.FACE)
        assert len(opened) == len(stored)  # nobody had sealed it yet: decrypted, then sealed
        assert len(list(tmp_path.iterdir())) == 1
        opened.clear()
        second = GalleryIndex(envelope, MODEL, key, tmp_path).current(session, Modality.FACE)
        assert opened == []
        for mine, theirs in zip(first.arrays(), second.arrays(), strict=True):
            assert np.array_equal(mine, theirs)

    def test_the_snapshot_holds_no_vector_in_the_clear(self, session, envelope, stored, tmp_path):
        GalleryIndex(envelope, MODEL, secrets.token_bytes(32), tmp_path).current(
            session, Modality.FACE
        )
        (path,) = tmp_path.iterdir()
        blob = path.read_bytes()
        for v in stored.values():
            for dtype in ("<f4", "<f8", ">f4"):
                raw = np.asarray(v, dtype=dtype)
                assert raw.tobytes()[:16] not in blob
                assert not any(x.tobytes() + raw[i + 1 : i + 2].tobytes() in blob
                               for i, x in enumerate(raw[:-1]))  # fmt: skip
        for template_id in stored:
            assert template_id.encode() not in blob

    def test_a_removal_reaches_the_snapshot(self, session, envelope, stored, tmp_path):
        key = secrets.token_bytes(32)
        index = GalleryIndex(envelope, MODEL, key, tmp_path)
        index.current(session, Modality.FACE)
        session.delete(session.get(BiometricTemplate, next(iter(stored))))
        session.commit()
        index.current(session, Modality.FACE)
        restarted = GalleryIndex(envelope, MODEL, key, tmp_path).current(session, Modality.FACE)
        assert len(restarted) == len(stored) - 1
        assert next(iter(stored)).encode() not in set(restarted.arrays()[1].tolist())

    def test_a_snapshot_of_another_database_or_key_is_not_used(
        self, session, envelope, stored, tmp_path, opened
    ):
        key = secrets.token_bytes(32)
        GalleryIndex(envelope, MODEL, key, tmp_path).current(session, Modality.FACE)
        # Another database at the same log position: the change logged there differs.
        change = session.exec(select(TemplateChange).order_by(TemplateChange.seq.desc())).first()
        change.template_id = "0" * 32
        session.commit()
        opened.clear()
        gallery = GalleryIndex(envelope, MODEL, key, tmp_path).current(session, Modality.FACE)
        assert len(opened) == len(stored) and len(gallery) == len(stored)
        opened.clear()
        other_key = GalleryIndex(envelope, MODEL, secrets.token_bytes(32), tmp_path)
        assert len(other_key.current(session, Modality.FACE)) == len(stored)
        assert len(opened) == len(stored)


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """The ids of the templates the gallery index decrypts."""
    calls: list[str] = []

    def counting(envelope, template):
        calls.append(template.id)
        return open_template(envelope, template)

    monkeypatch.setattr(biometrics_service, "open_template", counting)
    return calls


class TestShardedGalleryIndex:
    """Each shard's worker holds only its subjects' templates; together they hold them all."""

    @pytest.mark.parametrize("shards", [2, 3])
    def test_shards_split_the_gallery_by_subject(self, session, envelope, stored, shards):
        whole = GalleryIndex(envelope, MODEL).current(session, Modality.FACE)
        parts = [
            GalleryIndex(envelope, MODEL, shard=(k, shards)).current(session, Modality.FACE)
            for k in range(shards)
        ]
        assert sum(len(p) for p in parts) == len(whole)
        for k, part in enumerate(parts):
            subjects = part.arrays()[0]
            assert all(shard_of(int(s), shards) == k for s in subjects)

    def test_a_shard_applies_only_its_own_subjects_changes(
        self, session, envelope, stored, factories, opened
    ):
        newcomer = factories.SubjectFactory()
        session.commit()
        mine = shard_of(newcomer.id, 2)
        indexes = [GalleryIndex(envelope, MODEL, shard=(k, 2)) for k in range(2)]
        before = [len(i.current(session, Modality.FACE)) for i in indexes]
        opened.clear()
        factories.BiometricTemplateFactory(
            subject=newcomer, model=MODEL, sealed=(envelope, vector(99))
        )
        session.commit()
        after = [len(i.current(session, Modality.FACE)) for i in indexes]
        assert after[mine] == before[mine] + 1 and after[1 - mine] == before[1 - mine]
        assert len(opened) == 1  # decrypted by its own shard only
        found = identify(indexes[mine].current(session, Modality.FACE), vector(99), 0.01, 0.0)
        assert found.subject_id == newcomer.id

    def test_shard_snapshots_are_apart(self, session, envelope, stored, tmp_path):
        key = secrets.token_bytes(32)
        for k in range(2):
            GalleryIndex(envelope, MODEL, key, tmp_path, shard=(k, 2)).current(
                session, Modality.FACE
            )
        names = sorted(p.name for p in tmp_path.iterdir())
        assert len(names) == 2 and all("of2" in n for n in names)
        reopened = GalleryIndex(envelope, MODEL, key, tmp_path, shard=(1, 2))
        assert len(reopened.current(session, Modality.FACE)) == len(
            GalleryIndex(envelope, MODEL, shard=(1, 2)).current(session, Modality.FACE)
        )
