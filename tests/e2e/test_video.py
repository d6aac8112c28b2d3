"""Videos through the gate end to end: frames made from real photos, the real face model in a real
Celery worker; each person in a video is one finding however many frames show them."""

from __future__ import annotations

import pytest

from consent_service.vocabulary import Operation
from tests import videos
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(stack, photos, strangers, tmp_path_factory):
    """Alice (Obama's photos) consents to face swaps; a clip of three seconds shows her next to a
    stranger in every frame."""
    alice = stack.enroll("alice@example.org", photos["obama2.jpg"], photos["obama3.jpg"])
    assert (alice.status, alice.template_count) == ("completed", 2), alice.error
    stack.grant(alice.subject_id, Operation.FACE_SWAP)
    _, key = stack.provider("Studio V")
    folder = tmp_path_factory.mktemp("videos")
    clip = folder / "two-people.mp4"
    clip.write_bytes(
        videos.encode(videos.side_by_side(photos["obama.jpg"], strangers[0], 12), fps=4)
    )
    empty = folder / "nobody.webm"
    empty.write_bytes(videos.encode(videos.blank(8, 320, 240), fmt="webm", codec="libvpx"))
    return {"api": Api(stack.client(), key), "clip": clip, "empty": empty}


def _outcomes(job: dict) -> list[tuple[int, str, str]]:
    return sorted((f["media"], f["role"], f["outcome"]) for f in job["findings"])


def test_a_video_of_two_people_names_each_person_once(world):
    job = world["api"].gate(target=[world["clip"]])
    assert job["decision"] == "needs_consent", job
    # Three sampled frames show each of them: still one finding per person.
    assert _outcomes(job) == [(0, "target", "consented"), (0, "target", "unenrolled")]
    assert job["media"][0]["error"] is None


def test_the_other_person_revoking_denies_the_video(stack, world, strangers):
    carol = stack.enroll("carol@example.org", strangers[0])
    assert carol.status == "completed", carol.error
    grant = stack.grant(carol.subject_id, Operation.FACE_SWAP)
    allowed = world["api"].gate(source=[world["clip"]])
    assert allowed["decision"] == "allow", allowed
    assert _outcomes(allowed) == [(0, "source", "consented")] * 2
    stack.revoke(carol.subject_id, grant.grant_id)
    denied = world["api"].gate(source=[world["clip"]])
    assert denied["decision"] == "deny"
    assert denied["reasons"] == ["revoked"]
    assert _outcomes(denied) == [(0, "source", "consented"), (0, "source", "revoked")]


def test_videos_without_faces_and_playlists_are_refused(world, tmp_path):
    nobody = world["api"].gate(target=[world["empty"]])
    assert (nobody["decision"], nobody["reasons"]) == ("deny", ["no_face_found"])
    playlist = tmp_path / "clip.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXTINF:3,\nfile://{world['clip']}\n#EXT-X-ENDLIST\n")
    refused = world["api"].gate(target=[playlist])
    assert (refused["decision"], refused["reasons"]) == ("deny", ["rejected_input"])
    assert "playlist" in refused["media"][0]["error"]
    assert refused["findings"] == []
