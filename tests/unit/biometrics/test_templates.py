"""Templates at rest: sealed, bound to their row; and the worker's gallery built from them."""

from __future__ import annotations

import secrets

import numpy as np
import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import update
from sqlmodel import select

from consent_service.biometrics.matching import identify
from consent_service.biometrics.models import BiometricTemplate
from consent_service.biometrics.service import (
    GalleryIndex,
    bump_gallery,
    open_template,
)
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
        bump_gallery(session, Modality.FACE)
        session.commit()
        gallery = GalleryIndex(envelope, MODEL).current(session, Modality.FACE)
        assert len(gallery) == len(stored)
        for template_id, v in stored.items():
            subject_id = session.get(BiometricTemplate, template_id).subject_id
            assert identify(gallery, v, 0.01, 0.0).subject_id == subject_id

    def test_templates_of_another_model_are_left_out(self, session, envelope, stored):
        assert len(GalleryIndex(envelope, "some-other-model").current(session, Modality.FACE)) == 0

    def test_gallery_is_rebuilt_when_the_version_moves(self, session, envelope, stored, factories):
        index = GalleryIndex(envelope, MODEL)
        first = index.current(session, Modality.FACE)
        assert index.current(session, Modality.FACE) is first  # unchanged version: cached

        newcomer = factories.SubjectFactory()
        factories.BiometricTemplateFactory(
            subject=newcomer, model=MODEL, sealed=(envelope, vector(99))
        )
        bump_gallery(session, Modality.FACE)
        session.commit()

        second = index.current(session, Modality.FACE)
        assert second.version == first.version + 1
        assert len(second) == len(first) + 1
        assert identify(second, vector(99), 0.01, 0.0).subject_id == newcomer.id
