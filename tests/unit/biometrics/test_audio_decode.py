"""Audio decoding for voice work against a corpus built here in code: every accepted container
decodes to 16 kHz mono; every refusal is a MediaRejected a person can act on; nothing named inside
the media is ever opened; silence holds no speech."""

from __future__ import annotations

import numpy as np
import pytest

from consent_service.biometrics.audio import SAMPLE_RATE, decode_audio, speech_segments
from consent_service.errors import MediaRejected
from tests import speech as clips
from tests import videos


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    """Four seconds of a real speaker (FEE083) talking alone in a meeting recording."""
    return clips.speech("FEE083", "trn09", max_seconds=4.0)


def rejection(data: bytes, max_seconds: float = 60.0) -> str:
    with pytest.raises(MediaRejected) as caught:
        decode_audio(data, max_seconds)
    message = str(caught.value)
    assert message.endswith("."), message
    return message


@pytest.mark.parametrize(
    ("fmt", "codec", "options"),
    [
        ("wav", "pcm_s16le", {"rate": 44_100}),
        ("ogg", "libopus", {}),
        ("webm", "libopus", {}),  # what browsers' MediaRecorder produces
        ("mp3", "libmp3lame", {"rate": 44_100}),
        ("ipod", "aac", {}),  # .m4a
        ("flac", "flac", {}),
        ("mp4", "aac", {"video_frames": 16}),  # the sound track of a video
    ],
)
def test_each_container_decodes_to_16k_mono_with_the_speech_kept(voice, fmt, codec, options):
    samples = decode_audio(clips.encode(voice, fmt, codec, **options), 60)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) / SAMPLE_RATE - 4.0) < 0.1
    assert float(np.max(np.abs(samples))) <= 1.0
    heard = sum(s.end - s.start for s in speech_segments(samples))
    assert heard >= 2.0, heard


def test_silence_and_faint_hiss_hold_no_speech():
    silence = decode_audio(clips.wav_bytes(clips.silence(3.0)), 60)
    assert len(silence) == 3 * SAMPLE_RATE and not silence.any()
    assert speech_segments(silence) == []
    hiss = np.random.default_rng(1).normal(0, 1e-4, 3 * SAMPLE_RATE).astype(np.float32)
    assert speech_segments(hiss) == []


def test_real_speech_is_found_where_it_is(voice):
    padded = np.concatenate([clips.silence(2.0), voice, clips.silence(2.0)])
    segments = speech_segments(padded)
    assert segments
    assert segments[0].start >= 1.9 and segments[-1].end <= 6.2


def test_empty_and_garbage_are_refused():
    assert rejection(b"") == "The file is empty."
    assert "not a media container we accept" in rejection(b"\x00" * 4096)
    assert "not a media container we accept" in rejection(np.random.bytes(50_000))


@pytest.mark.parametrize(
    "playlist",
    [
        b"#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:9/voice.wav\n",
        b"ffconcat version 1.0\nfile /etc/passwd\n",
        b"[playlist]\nFile1=file:///etc/passwd\n",
    ],
)
def test_playlists_are_refused_without_opening_what_they_name(playlist):
    assert "Playlists" in rejection(playlist)


def test_too_long_is_refused(voice):
    message = rejection(clips.wav_bytes(np.tile(voice, 3)), max_seconds=5.0)
    assert "5 s" in message or "5 seconds" in message, message


def test_truncated_and_damaged_files_are_refused(voice):
    m4a = clips.encode(voice, "ipod", "aac")
    rejection(m4a[: len(m4a) // 3])
    ogg = clips.encode(voice, "ogg", "libopus")
    damaged = ogg[:200] + bytes(len(ogg) - 200)
    try:
        samples = decode_audio(damaged, 60)
    except MediaRejected:
        return
    assert len(samples) < len(voice)  # what survives is only what was intact


def test_a_video_without_sound_and_an_image_are_refused():
    silent_video = videos.encode(videos.blank(8), fmt="mp4", fps=4)
    assert rejection(silent_video) == "The file has no audio track."
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    assert "not a media container we accept" in rejection(png)


def test_context_keeps_word_edges_and_joins_close_stretches(voice):
    padded = np.concatenate([clips.silence(2.0), voice, clips.silence(2.0)])
    bare = speech_segments(padded)
    wide = speech_segments(padded, context=0.2)
    assert wide[0].start == pytest.approx(max(0.0, bare[0].start - 0.21), abs=0.02)
    assert wide[-1].end == pytest.approx(bare[-1].end + 0.21, abs=0.02)
    assert len(wide) <= len(bare)  # stretches within 0.4 s of each other join
    assert all(len(s.samples) == round((s.end - s.start) * SAMPLE_RATE) for s in wide)
    assert sum(len(s.samples) for s in wide) > sum(len(s.samples) for s in bare)


@pytest.mark.parametrize("rate", [1_895_841_408, 1_000, 400_000])
def test_a_sample_rate_no_recording_uses_is_refused_at_once(voice, rate):
    """A WAV header may declare any 32-bit rate; resampling 1.9 GHz "audio" to 16 kHz took 15 s
    of CPU and 2 GB (the fuzzing finding kept in tests/fuzz_corpus/audio/)."""
    wav = bytearray(clips.wav_bytes(voice[: SAMPLE_RATE // 2]))
    assert wav[24:28] == SAMPLE_RATE.to_bytes(4, "little")  # the fmt chunk's rate
    wav[24:28] = rate.to_bytes(4, "little")
    message = rejection(bytes(wav))
    assert f"{rate:,}" in message and "no recording uses" in message, message


@pytest.mark.parametrize("rate", [8_000, 48_000, 96_000])
def test_the_rates_recordings_use_decode(voice, rate):
    wav = bytearray(clips.wav_bytes(voice[: SAMPLE_RATE // 2]))
    wav[24:28] = rate.to_bytes(4, "little")
    assert len(decode_audio(bytes(wav), 60)) > 0
