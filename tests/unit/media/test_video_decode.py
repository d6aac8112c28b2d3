"""Video decoding against a corpus of bad videos built here in code (RELIABILITY.md, "Bad input"):
every refusal is a MediaRejected a person can act on; nothing named inside media is ever opened."""

from __future__ import annotations

import io
import time

import av
import numpy as np
import pytest

from consent_service.errors import MediaRejected
from consent_service.media import video
from consent_service.media.limits import VideoLimits
from consent_service.media.video import open_container, sample_frames
from tests import videos

LIMITS = VideoLimits(max_seconds=60, max_pixels=1920 * 1080, max_frames=1000, sample_fps=1.0)


def rejection(data: bytes, limits: VideoLimits = LIMITS) -> str:
    with pytest.raises(MediaRejected) as caught:
        for _ in sample_frames(data, limits):
            pass
    message = str(caught.value)
    assert message.endswith("."), message
    return message


@pytest.fixture(scope="module")
def clip() -> bytes:
    """Five seconds at 4 fps, 64×48, MP4."""
    return videos.encode(videos.blank(20), fmt="mp4", fps=4)


class TestSampling:
    @pytest.mark.parametrize(
        ("fmt", "codec"),
        [
            ("mp4", "mpeg4"),
            ("mov", "mpeg4"),
            ("matroska", "mpeg4"),
            ("webm", "libvpx"),
            ("avi", "mpeg4"),
        ],
    )
    def test_each_container_yields_frames_at_the_sample_rate(self, fmt, codec):
        data = videos.encode(videos.blank(20), fmt=fmt, codec=codec, fps=4)
        frames = list(sample_frames(data, LIMITS))
        assert [round(f.time, 2) for f in frames] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert all(f.rgb.shape == (48, 64, 3) and f.rgb.dtype.name == "uint8" for f in frames)

    def test_higher_rate_takes_more_frames(self, clip):
        limits = VideoLimits(max_seconds=60, max_pixels=10**6, max_frames=1000, sample_fps=2.0)
        assert len(list(sample_frames(clip, limits))) == 10

    def test_rate_above_the_frame_rate_takes_every_frame(self, clip):
        limits = VideoLimits(max_seconds=60, max_pixels=10**6, max_frames=1000, sample_fps=30)
        assert len(list(sample_frames(clip, limits))) == 20

    def test_pixels_are_the_encoded_ones(self):
        frames = videos.blank(4)
        decoded = list(sample_frames(videos.encode(frames, fps=1), LIMITS))
        for original, got in zip(frames, decoded, strict=True):
            assert abs(int(got.rgb.mean()) - int(original.mean())) <= 3

    @pytest.mark.parametrize(("degrees", "corner"), [(90, "bottom-left"), (-90, "top-right")])
    def test_frames_recorded_sideways_come_out_upright(self, degrees, corner):
        """A phone stores the turn in a display matrix; a landscape 64×48 frame with a bright
        top-left block, turned 90° counter-clockwise, is portrait with the block bottom-left."""
        still = np.zeros((48, 64, 3), np.uint8)
        still[:8, :16] = 255
        out = io.BytesIO()
        with av.open(out, "w", format="mp4") as container:
            stream = container.add_stream("mpeg4", rate=4)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            stream.set_display_rotation(degrees)
            for packet in stream.encode(av.VideoFrame.from_ndarray(still, format="rgb24")):
                container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        (frame,) = sample_frames(out.getvalue(), LIMITS)
        rgb = frame.rgb
        assert rgb.shape == (64, 48, 3)
        corners = {
            "top-left": rgb[:4, :4],
            "top-right": rgb[:4, -4:],
            "bottom-left": rgb[-4:, :4],
            "bottom-right": rgb[-4:, -4:],
        }
        assert max(corners, key=lambda k: corners[k].mean()) == corner

    def test_container_is_reusable_for_other_tracks(self, clip):
        with open_container(clip) as container:
            assert container.format.name.startswith("mov")
            assert len(container.streams.video) == 1


class TestLimits:
    def test_too_long_by_declaration(self, clip):
        short = VideoLimits(max_seconds=2, max_pixels=10**6, max_frames=1000, sample_fps=1)
        assert "declares 5 seconds; the limit is 2 s" in rejection(clip, short)

    def test_too_many_frames(self, clip):
        few = VideoLimits(max_seconds=60, max_pixels=10**6, max_frames=10, sample_fps=1)
        assert "20 frames; the limit is 10" in rejection(clip, few)

    def test_too_many_pixels(self, clip):
        tiny = VideoLimits(max_seconds=60, max_pixels=64 * 47, max_frames=1000, sample_fps=1)
        assert "64×48 pixels" in rejection(clip, tiny)

    def test_huge_resolution(self):
        data = videos.encode(videos.blank(1, width=4096, height=2304), codec="mpeg4")
        assert "4096×2304 pixels; the limit is 2,073,600" in rejection(data)


class TestCorpus:
    def test_empty(self):
        assert "empty" in rejection(b"")

    def test_truncated_mp4_without_its_index(self, clip):
        assert "damaged or truncated" in rejection(clip[: len(clip) // 2])

    def test_truncated_matroska_that_stops_early(self):
        mkv = videos.encode(videos.blank(40), fmt="matroska", fps=4)
        message = rejection(mkv[: len(mkv) // 3])
        assert "truncated" in message

    def test_truncated_avi(self):
        avi = videos.encode(videos.blank(20), fmt="avi", fps=4)
        assert "truncated" in rejection(avi[: len(avi) // 2])

    def test_zero_frames(self):
        assert "cannot be opened" in rejection(videos.no_frames_video())

    def test_mp4_without_a_video_track(self):
        out = io.BytesIO()
        with av.open(out, "w", format="mp4") as container:
            stream = container.add_stream("aac", rate=16000)
            for k in range(8):
                frame = av.AudioFrame.from_ndarray(
                    np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
                )
                frame.sample_rate, frame.pts = 16000, k * 1024
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        assert rejection(out.getvalue()) == "The file has no video track."

    def test_absurd_declared_frame_count(self):
        avi = videos.encode(videos.blank(8), fmt="avi", fps=4)
        started = time.monotonic()
        message = rejection(videos.patch_avi_length(avi, 0x7FFFFFF0))
        assert "declares" in message
        assert time.monotonic() - started < 2

    def test_absurd_declared_duration(self):
        mkv = videos.encode(videos.blank(8), fmt="matroska", fps=4)
        message = rejection(videos.patch_matroska_duration(mkv, 10**5))
        assert "declares 100,000 seconds" in message

    def test_random_bytes_behind_a_video_signature(self):
        junk = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40
        assert "damaged or truncated" in rejection(junk)

    def test_image_is_not_a_video(self):
        assert "not a media container we accept" in rejection(b"\xff\xd8\xff\xe0" + b"\x00" * 64)


class TestNothingNamedInsideMediaIsOpened:
    """Playlists that point at a real, valid video on this machine: were any of them followed,
    frames would come back."""

    @pytest.fixture
    def target(self, tmp_path):
        path = tmp_path / "inside.mp4"
        path.write_bytes(videos.encode(videos.blank(8), fmt="mp4", fps=4))
        return path

    def playlists(self, target) -> dict[str, bytes]:
        return {
            "hls": (
                f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\nfile://{target}\n#EXT-X-ENDLIST\n"
            ).encode(),
            "ffconcat": f"ffconcat version 1.0\nfile '{target}'\n".encode(),
            "ffconcat-relative": f"ffconcat version 1.0\nfile '{target.name}'\n".encode(),
        }

    def test_plain_pyav_would_follow_an_ffconcat_file(self, target):
        """Why the guard exists: FFmpeg's own probing opens the file named in the playlist."""
        data = self.playlists(target)["ffconcat"]
        with av.open(io.BytesIO(data), options={"safe": "0"}) as container:
            assert sum(1 for _ in container.decode(video=0)) == 8

    @pytest.mark.parametrize("kind", ["hls", "ffconcat", "ffconcat-relative"])
    def test_playlists_are_refused(self, target, kind):
        message = rejection(self.playlists(target)[kind])
        assert "Playlists" in message

    @pytest.mark.parametrize(("kind", "demuxer"), [("hls", "hls"), ("ffconcat", "concat")])
    def test_nested_opens_fail_even_if_a_playlist_demuxer_were_chosen(
        self, target, kind, demuxer, monkeypatch
    ):
        """Defence in depth: were sniffing ever fooled, no protocol is allowed for nested opens."""
        monkeypatch.setattr(video, "container_format", lambda data: demuxer)
        data = self.playlists(target)[kind]
        with pytest.raises(MediaRejected), open_container(data, (demuxer,)) as container:
            for _ in container.decode(video=0):
                raise AssertionError("a file named inside the media was opened")


class TestDataReferences:
    """A MOV whose track's samples live in another file (a data reference, `dref`/`alis`), its
    own media data zeroed: were the reference ever followed, frames would come back."""

    @pytest.fixture
    def referring(self, tmp_path) -> tuple[bytes, bytes]:
        original = videos.encode(videos.blank(8), fmt="mov", fps=4)
        external = tmp_path / "external.mov"
        external.write_bytes(original)
        return videos.with_data_reference(original, str(external)), original

    def test_plain_pyav_would_follow_it(self, referring, tmp_path):
        """Why `enable_drefs` is switched off: FFmpeg opens the referenced file when it is on."""
        main = tmp_path / "main.mov"
        main.write_bytes(referring[0])
        options = {"enable_drefs": "1", "use_absolute_path": "1"}
        with av.open(str(main), options=options) as container:
            assert sum(1 for _ in container.decode(video=0)) == 8

    def test_sampling_never_opens_the_referenced_file(self, referring):
        assert rejection(referring[0]) == "The video contains no frames."

    def test_audio_decoding_never_opens_it_either(self, referring):
        from consent_service.biometrics.audio import decode_audio

        with pytest.raises(MediaRejected, match="no audio track"):
            decode_audio(referring[0], 60)


class TestPolyglots:
    def test_a_video_that_is_also_a_zip_is_read_as_the_video_only(self, clip):
        import zipfile

        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("index.html", "<script>alert(1)</script>")
        frames = list(sample_frames(clip + archive.getvalue(), LIMITS))
        assert len(frames) == len(list(sample_frames(clip, LIMITS)))
