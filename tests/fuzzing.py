"""Coverage-guided fuzzing of the media decoders the worker runs on uploads (atheris: libFuzzer's
engine for Python), always in a child process under a memory limit (RLIMIT_AS, and libFuzzer's
RSS limit), a CPU limit (RLIMIT_CPU), a per-input timeout and a wall-clock deadline.

The contract fuzzed: on any bytes, `decode_image`, `sample_frames` and `decode_audio` (then
`speech_segments`) return values within their limits or raise `MediaRejected`; anything else
(another exception, a crash, a hang, memory past the limit) is a finding, written by libFuzzer
as `crash-*`, `timeout-*` or `oom-*`. A finding, once fixed, is kept in `tests/fuzz_corpus/
<target>/` and replayed on every run (tests/unit/media/test_fuzz_decoders.py).

Every seed ends with `CANARY`, so what the mutations keep of it can be looked for afterwards
(`leftovers`): nothing of an input may stay behind in /tmp, the media folder or the logs.

`python -m tests.fuzzing TARGET [libFuzzer flags and corpus dirs or files]` is the child.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
TARGETS = ("image", "video", "audio")
# Bytes no decoder writes by itself, new in each process (so two runs at once never see each
# other's inputs): found anywhere after a run, an input of this run was left behind.
CANARY = b"\x8b\x00FUZZ-" + os.urandom(6).hex().encode() + b"\xfe"
MAX_LEN = 64 * 1024  # bytes per input: small files reach the same parsers, much faster


# ---------------------------------------------------------------------------- the child
def _targets() -> dict[str, Callable[[bytes], None]]:
    """Each target as the worker calls it (production limits: the settings' defaults), with the
    contract's checks on what comes back. Imported in the child, under atheris's instrumentation."""
    import numpy as np

    from consent_service.biometrics.audio import SAMPLE_RATE, decode_audio, speech_segments
    from consent_service.biometrics.images import decode_image
    from consent_service.media.limits import VideoLimits
    from consent_service.media.video import sample_frames
    from consent_service.settings import Settings

    fields = Settings.model_fields
    max_pixels = fields["max_image_pixels"].default
    video = VideoLimits(
        max_seconds=fields["video_max_seconds"].default,
        max_pixels=fields["video_max_pixels"].default,
        max_frames=fields["video_max_frames"].default,
        sample_fps=fields["video_sample_fps"].default,
    )
    max_seconds = fields["audio_max_seconds"].default

    def image(data: bytes) -> None:
        rgb = decode_image(data, max_pixels)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, rgb.shape
        assert 0 < rgb.shape[0] * rgb.shape[1] <= max_pixels, rgb.shape

    def frames(data: bytes) -> None:
        for frame in sample_frames(data, video):
            rgb = frame.rgb
            assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, rgb.shape
            assert 0 < rgb.shape[0] * rgb.shape[1] <= video.max_pixels, rgb.shape
            assert frame.time <= video.max_seconds, frame.time

    def audio(data: bytes) -> None:
        samples = decode_audio(data, max_seconds)
        assert samples.dtype == np.float32 and samples.ndim == 1, samples.shape
        assert 0 < len(samples) <= max_seconds * SAMPLE_RATE, len(samples)
        assert bool(np.all(np.abs(samples) <= 1.0)), "samples outside [-1, 1]"
        for stretch in speech_segments(samples):
            assert 0 <= stretch.start < stretch.end <= len(samples) / SAMPLE_RATE + 0.03

    # The harness's own checks (tests/unit/media/test_fuzz_decoders.py): a breach of each kind
    # must come back as a finding, or a clean run would prove nothing.
    def breach_raise(data: bytes) -> None:
        raise ValueError("not a MediaRejected")

    def breach_memory(data: bytes) -> None:
        bytearray(8 << 30)  # 8 GiB: past RLIMIT_AS

    def breach_hang(data: bytes) -> None:
        time.sleep(3600)

    return {
        "image": image,
        "video": frames,
        "audio": audio,
        "breach-raise": breach_raise,
        "breach-memory": breach_memory,
        "breach-hang": breach_hang,
    }


def child(argv: list[str]) -> None:
    """Run libFuzzer on one target: argv = [prog, TARGET, libFuzzer flags…, corpus dirs…]."""
    import atheris

    target = argv[1]
    # Python-level coverage: our decoders and the Pillow parsers decode_image allows (imported
    # inside the block). FFmpeg, libjpeg, zlib… are C: mutated, but not measured.
    with atheris.instrument_imports(include=["PIL", "consent_service"]):
        from PIL import (  # noqa: F401 - imported to be instrumented
            BmpImagePlugin,
            GifImagePlugin,
            Image,
            ImageOps,
            JpegImagePlugin,
            PngImagePlugin,
            TiffImagePlugin,
            WebPImagePlugin,
        )

        from consent_service.errors import MediaRejected

        run = _targets()[target]

    def one_input(data: bytes) -> None:
        with contextlib.suppress(MediaRejected):  # the contract's one allowed exception
            run(data)

    atheris.Setup([argv[0], *argv[2:]], one_input)
    atheris.Fuzz()


# ---------------------------------------------------------------------------- the seeds
def _image_seeds() -> Iterator[tuple[str, bytes]]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)

    def save(image, fmt: str, **options) -> bytes:
        out = io.BytesIO()
        image.save(out, fmt, **options)
        return out.getvalue()

    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turned
    yield "baseline.jpg", save(img, "JPEG", quality=80)
    yield "progressive-exif.jpg", save(img, "JPEG", progressive=True, exif=exif.tobytes())
    yield "rgb.png", save(img, "PNG")
    yield "palette.png", save(img.convert("P"), "PNG")
    yield "gray16.png", save(Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), "PNG")
    yield "animated.gif", save(img.convert("P"), "GIF", save_all=True, append_images=[img])
    yield "rgb.bmp", save(img, "BMP")
    yield "lossy.webp", save(img, "WEBP", quality=50)
    yield "raw.tiff", save(img, "TIFF")
    yield "lzw.tiff", save(img, "TIFF", compression="tiff_lzw", exif=exif.tobytes())
    yield "packbits.tiff", save(img.convert("L"), "TIFF", compression="packbits")
    # Polyglots: one file that is also another kind of file. Only the image is ever read.
    jpeg = save(img, "JPEG", quality=80)
    yield "jpeg-zip.jpg", jpeg + _zip({"index.html": b"<script>alert(1)</script>"})
    yield "jpeg-html.jpg", jpeg + b"<html><script>alert(1)</script></html>"
    yield "html-behind-jpeg-magic.jpg", b"\xff\xd8\xff\xe0<html><script>alert(1)</script>"


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def _video_seeds() -> Iterator[tuple[str, bytes]]:
    from tests import videos

    frames = videos.blank(6, width=32, height=24)
    yield "mpeg4.mp4", videos.encode(frames, fmt="mp4", fps=4)
    yield "mpeg4.mov", videos.encode(frames, fmt="mov", fps=4)
    yield "mpeg4.mkv", videos.encode(frames, fmt="matroska", fps=4)
    yield "vp8.webm", videos.encode(frames, fmt="webm", codec="libvpx", fps=4)
    yield "mpeg4.avi", videos.encode(frames, fmt="avi", fps=4)
    yield (
        "dref.mov",
        videos.with_data_reference(videos.encode(frames, fmt="mov", fps=4), "/etc/passwd"),
    )
    yield "mp4-zip.mp4", videos.encode(frames, fmt="mp4", fps=4) + _zip({"a.txt": b"a"})


def _audio_seeds() -> Iterator[tuple[str, bytes]]:
    import numpy as np

    from tests import speech

    t = np.arange(8000, dtype=np.float32) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    yield "tone.wav", speech.wav_bytes(tone)
    for fmt, codec, ext in [
        ("flac", "flac", "flac"),
        ("ogg", "libopus", "opus"),
        ("webm", "libopus", "webm"),
        ("mp3", "libmp3lame", "mp3"),
    ]:
        yield f"tone.{ext}", speech.encode(tone, fmt, codec, rate=16_000, layout="mono")
    yield "tone-in-video.mp4", speech.encode(tone, "mp4", "aac", video_frames=2)


SEEDS: dict[str, Callable[[], Iterable[tuple[str, bytes]]]] = {
    "image": _image_seeds,
    "video": _video_seeds,
    "audio": _audio_seeds,
}


def write_seeds(target: str, directory: Path) -> list[Path]:
    """The target's seeds, each ending with CANARY, written to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in SEEDS[target]():
        path = directory / name
        path.write_bytes(data + CANARY)
        paths.append(path)
    return paths


def corpus(target: str) -> list[Path]:
    """The kept findings of a target (every crasher, timeout and oom ever fixed)."""
    folder = CORPUS / target
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


# ---------------------------------------------------------------------------- the parent
@dataclass
class Limits:
    memory_mb: int = 3072  # RLIMIT_AS of the child (address space, not RSS)
    rss_mb: int = 2048  # libFuzzer's own RSS check, every second
    input_seconds: int = 10  # libFuzzer's per-input timeout
    # On top of the run's own seconds, for start-up (instrumenting Pillow takes a few CPU
    # seconds) and teardown on a loaded machine: the deadline only stops a child that hangs.
    slack_seconds: int = 240


@dataclass
class FuzzRun:
    target: str
    returncode: int
    seconds: float
    log: str
    findings: list[Path] = field(default_factory=list)  # crash-*, timeout-*, oom-* files
    executions: int = 0
    coverage: int = 0  # libFuzzer's `cov:` (instrumented edges: Python code of PIL and ours)
    features: int = 0  # libFuzzer's `ft:`
    corpus_units: int = 0
    peak_rss_mb: int = 0
    timed_out: bool = False  # the parent's wall-clock deadline killed the child

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.findings and not self.timed_out

    def summary(self) -> str:
        tail = "\n".join(self.log.splitlines()[-40:])
        return f"{self.target}: exit {self.returncode}, findings {self.findings}\n{tail}"


def _limit(memory_mb: int, cpu_seconds: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _stat(log: str, name: str) -> int:
    found = re.findall(rf"stat::{name}:\s+(\d+)", log)
    return int(found[-1]) if found else 0


def run_child(
    target: str, inputs: list[Path], workdir: Path, flags: list[str], seconds: float, limits: Limits
) -> FuzzRun:
    """libFuzzer on `target` in a child under `limits`, its cwd and TMPDIR inside `workdir`."""
    artifacts = workdir / "findings"
    scratch = workdir / "tmp"
    for folder in (artifacts, scratch):
        folder.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "tests.fuzzing",
        target,
        f"-rss_limit_mb={limits.rss_mb}",
        f"-timeout={limits.input_seconds}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        *flags,
        *map(str, inputs),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(scratch),
        # One BLAS thread: its per-thread buffers would take the address space the limit is for.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        # Pillow warns on every odd header it meets: noise in the log, and time.
        "PYTHONWARNINGS": "ignore",
    }
    deadline = seconds + limits.slack_seconds
    started = time.monotonic()
    timed_out = False
    with subprocess.Popen(
        argv,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Safe here: the parent starts no thread before the fork (pytest's and the bench's main).
        preexec_fn=_limit(limits.memory_mb, int(deadline)),
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=deadline)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            timed_out = True
    log = out.decode("utf-8", "replace")
    run = FuzzRun(
        target=target,
        returncode=proc.returncode,
        seconds=time.monotonic() - started,
        log=log,
        findings=sorted(artifacts.iterdir()),
        timed_out=timed_out,
        executions=_stat(log, "number_of_executed_units"),
        peak_rss_mb=_stat(log, "peak_rss_mb"),
    )
    status = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/", log)
    if status:
        run.coverage, run.features, run.corpus_units = map(int, status[-1])
    return run


def fuzz(
    target: str,
    seconds: float,
    workdir: Path,
    limits: Limits | None = None,
    runs: int | None = None,
    seed: int | None = None,
) -> FuzzRun:
    """Fuzz `target` for `seconds` (or `runs` inputs) from its seeds and kept corpus; new inputs
    go to workdir/corpus, findings to workdir/findings."""
    limits = limits or Limits()
    seeds = workdir / "seeds"
    write_seeds(target, seeds)
    grown = workdir / "corpus"
    grown.mkdir(parents=True, exist_ok=True)
    flags = [f"-max_total_time={int(seconds)}", f"-max_len={MAX_LEN}"]
    if runs is not None:
        flags.append(f"-runs={runs}")
    if seed is not None:
        flags.append(f"-seed={seed}")
    kept = [CORPUS / target] if (CORPUS / target).is_dir() else []  # git keeps no empty folder
    return run_child(target, [grown, seeds, *kept], workdir, flags, seconds, limits)


def replay(target: str, files: list[Path], workdir: Path, limits: Limits | None = None) -> FuzzRun:
    """Each file run once through the target (libFuzzer's replay of individual inputs)."""
    limits = limits or Limits()
    seconds = limits.input_seconds * max(1, len(files))
    return run_child(target, files, workdir, [], seconds, limits)


# ---------------------------------------------------------------------------- leftovers
def _forms(marker: bytes) -> list[bytes]:
    """The marker as bytes and as a log would print them (hex, base64, a Python bytes repr)."""
    return [
        marker,
        marker.hex().encode(),
        base64.b64encode(marker)[:16],
        repr(marker)[2:-1].encode(),
    ]


def leftovers(roots: Iterable[Path], since: float, skip: Iterable[Path] = ()) -> list[Path]:
    """Files under `roots` changed since `since` (a time.time()) that hold CANARY in any form.
    Files that vanish or cannot be read while walking (other processes' temporary files) are
    passed over; so are `skip` folders (a run's own corpus and findings) and files over 64 MB."""
    forms = _forms(CANARY)
    skipped = [p.resolve() for p in skip]
    found = []
    for root in roots:
        for folder, dirs, files in os.walk(root, onerror=lambda error: None):
            here = Path(folder).resolve()
            if any(here == s or s in here.parents for s in skipped):
                dirs.clear()
                continue
            for name in files:
                path = here / name
                try:
                    info = path.lstat()
                    if not path.is_file() or info.st_mtime < since or info.st_size > 64 << 20:
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                if any(form in data for form in forms):
                    found.append(path)
    return found


def temp_roots() -> list[Path]:
    """Where a decoder or a library would put a temporary file: TMPDIR and /tmp."""
    return sorted({Path(tempfile.gettempdir()), Path("/tmp")})  # noqa: S108 - read, never written


def canary_in(text: str) -> bool:
    """Whether a log holds CANARY in any printable form."""
    data = text.encode("utf-8", "surrogateescape")
    return any(form in data for form in _forms(CANARY)) or CANARY[2:-1].decode() in text


if __name__ == "__main__":
    child(sys.argv)
