"""The matching worker's side of a sharded gallery: `ShardedGallery` searched by the analysers,
its probes and the shards' answers through JSON (as Celery carries them), decides as the whole
gallery; and the settings and routes the chord needs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from celery import Celery
from celery.exceptions import ChordError, TaskRevokedError
from celery.exceptions import TimeoutError as ResultTimeout
from flask import Flask

from consent_service.biometrics import shards as shards_module
from consent_service.biometrics.gallery import Gallery, Match, Rule, shard_of
from consent_service.biometrics.shards import (
    ChordFanOut,
    ShardedGallery,
    ShardedIndex,
    ShardsUnavailable,
    merge_answers,
    search_shard,
)
from consent_service.biometrics.tracks import identify_tracks
from consent_service.queues import (
    GALLERY_MERGE_QUEUE,
    gallery_queues,
    shard_queue,
    shard_worker_queues,
)
from consent_service.settings import Settings
from consent_service.tasking import celery_config
from consent_service.vocabulary import Modality
from tests.unit.biometrics.test_gallery import probes_near, random_rows


class InProcessFanOut:
    """The chord without Celery: every shard's search, then the merge, each argument and answer
    passed through JSON as the broker and the result backend would."""

    def __init__(self, rows, shards: int):
        self.parts = [
            Gallery.build(1, [r for r in rows if shard_of(r[0], shards) == k])
            for k in range(shards)
        ]
        self.calls = 0

    def __call__(self, modality, probes, tolerance, margin, exclude_subject, rule):
        self.calls += 1
        sent = json.loads(json.dumps([probes, exclude_subject, rule.value]))
        answers = [
            json.loads(json.dumps(search_shard(part, sent[0], sent[1], Rule(sent[2]))))
            for part in self.parts
        ]
        merged = json.loads(
            json.dumps(
                [(m.subject_id, m.ambiguous) for m in merge_answers(answers, tolerance, margin)]
            )
        )
        return [Match(s, a) for s, a in merged]


@pytest.mark.parametrize("rule", list(Rule))
@pytest.mark.parametrize("seed", range(3))
def test_a_sharded_gallery_decides_as_the_whole_one_through_json(seed, rule):
    rng = np.random.default_rng(500 + seed)
    rows = random_rows(rng, subjects=int(rng.integers(5, 60)))
    probes = probes_near(rng, rows, 30)
    whole = Gallery.build(1, rows)
    for shards in (2, 3):
        sharded = ShardedIndex(InProcessFanOut(rows, shards)).current(None, Modality.FACE)
        for tolerance, margin in [(0.5, 0.06), (0.6, 0.0), (1.5, 0.01)]:
            excluded = rows[0][0]
            for exclude in (None, excluded):
                want = whole.identify_many(probes, tolerance, margin, exclude, rule)
                assert sharded.identify_many(probes, tolerance, margin, exclude, rule) == want
            one = whole.identify(probes[0], tolerance, margin, rule=rule)
            assert sharded.identify(probes[0], tolerance, margin, rule=rule) == one


def test_the_analysers_vote_on_a_sharded_gallery_as_on_the_whole_one():
    """identify_tracks (the gate's face path) searches every face of a media item in one call:
    one fan-out per media item."""
    rng = np.random.default_rng(9)
    rows = random_rows(rng, subjects=30)
    tracks = [probes_near(rng, rows, int(rng.integers(1, 6))) for _ in range(8)]
    fan_out = InProcessFanOut(rows, 2)
    sharded = ShardedGallery(Modality.FACE, fan_out)
    whole = Gallery.build(1, rows)
    for rule in Rule:
        assert identify_tracks(sharded, tracks, 0.5, 0.06, rule) == identify_tracks(
            whole, tracks, 0.5, 0.06, rule
        )
    assert fan_out.calls == 2


def test_no_probes_send_nothing():
    fan_out = InProcessFanOut([], 2)
    assert ShardedGallery(Modality.VOICE, fan_out).identify_many([], 0.5, 0.05) == []
    assert fan_out.calls == 0


def test_shards_answering_for_different_probes_are_refused():
    with pytest.raises(ValueError, match="numbers of probes"):
        merge_answers([[[]], [[], []]], 0.5, 0.06)


def test_a_result_backend_only_where_the_shards_need_one(tmp_path):
    assert Settings(consent_service_home=tmp_path).result_backend_url is None
    embedded = Settings(consent_service_home=tmp_path, gallery_shards=2)
    assert embedded.result_backend_url == f"db+sqlite:///{tmp_path / 'celery-results.sqlite'}"
    on_redis = Settings(consent_service_home=tmp_path, gallery_shards=2, broker_url="redis://r/1")
    assert on_redis.result_backend_url == "redis://r/1"
    chosen = Settings(gallery_shards=2, celery_result_backend="redis://elsewhere/2")
    assert chosen.result_backend_url == "redis://elsewhere/2"
    assert "result_backend" not in celery_config(Settings(consent_service_home=tmp_path))
    config = celery_config(embedded)
    assert config["result_backend"] == embedded.result_backend_url
    # The merge (and an SQL backend's chord polling) never waits on a matching worker.
    assert config["task_routes"]["gallery.merge_shards"] == {"queue": GALLERY_MERGE_QUEUE}
    assert config["task_routes"]["celery.chord_unlock"] == {"queue": GALLERY_MERGE_QUEUE}


def test_a_shard_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="GALLERY_SHARD 2 does not exist"):
        Settings(gallery_shards=2, gallery_shard=2)
    with pytest.raises(ValueError, match="shorter than TASK_TIME_LIMIT"):
        Settings(gallery_shards=2, gallery_shard_timeout=400)


def test_each_shard_has_queues_of_its_own():
    assert shard_queue(Modality.FACE, 1) == "gallery.face.shard.1"
    assert shard_worker_queues(0) == (
        "gallery.face.shard.0",
        "gallery.voice.shard.0",
        "gallery.merge",
    )
    # What the health page and the metrics report: every shard's, then the merges'; none whole.
    assert gallery_queues(2) == (*shard_worker_queues(0)[:2], *shard_worker_queues(1))
    assert gallery_queues(1) == ()


@pytest.mark.parametrize(
    "answer",
    [
        ResultTimeout("The operation timed out."),
        ChordError("Dependency raised ValueError()"),
        # A search received after the timeout is discarded as expired (a partition healing).
        TaskRevokedError("expired"),
    ],
    ids=["timeout", "chord-error", "expired"],
)
def test_a_chord_the_shards_did_not_answer_in_time_is_shards_unavailable(monkeypatch, answer):
    """Whatever way the chord says a shard did not answer in time, the job's task sees
    `ShardsUnavailable` (sent again, then failed), never another error that escapes it."""

    class Result:
        parent = None

        def get(self, **kwargs):
            raise answer

        def forget(self):
            pass

    class Chord:
        def __init__(self, header, body, app):
            self.header = header

        def apply_async(self):
            return Result()

    monkeypatch.setattr(shards_module, "chord", Chord)
    app = Flask(__name__)
    app.extensions["celery"] = Celery(set_as_current=False)
    with app.app_context(), pytest.raises(ShardsUnavailable, match="did not all answer"):
        ChordFanOut(2, 6.0)(Modality.FACE, [[0.0] * 128], 0.5, 0.06, None, Rule.MEAN)
