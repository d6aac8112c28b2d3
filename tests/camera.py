"""A fake webcam for Chromium (`--use-file-for-fake-video-capture`): a looping Y4M clip made from
real face photos, one segment per head pose, each segment marked by a coloured square in its
top-left corner so a test can tell which pose the camera shows at any moment.

The poses come from real photos measured with the 5-point yaw of consent_service.biometrics.
liveness: obama.jpg looks straight at the camera (yaw about 0), obama2.jpg is turned to his right
(about -0.14 once cropped; squeezed on the far side of the nose as a turn foreshortens it,
about -0.18), and its mirror image is the same face turned to his left (about +0.19)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

WIDTH, HEIGHT, FPS = 640, 480, 10
MARKS = {"front": (255, 0, 0), "left": (0, 255, 0), "right": (0, 0, 255)}
MARK_SIZE = 48


def _face_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    import face_recognition

    boxes = face_recognition.face_locations(rgb)
    assert len(boxes) == 1, boxes
    return boxes[0]


def portrait(photo: Path, mirror: bool = False) -> Image.Image:
    """The photo's face, centred in a camera-sized frame with room around it."""
    image = Image.open(photo).convert("RGB")
    if mirror:
        image = ImageOps.mirror(image)
    top, right, bottom, left = _face_box(np.asarray(image))
    side = (bottom - top) * 2.4  # the face fills about 40% of the frame's height
    cx, cy = (left + right) / 2, (top + bottom) / 2
    box = (cx - side * 2 / 3, cy - side / 2, cx + side * 2 / 3, cy + side / 2)
    return image.crop(tuple(round(v) for v in box)).resize((WIDTH, HEIGHT))


def turn_further(picture: Image.Image, squeeze: float = 0.7) -> Image.Image:
    """A face turned to its right, turned a little further: the part of the picture on the
    nose's far side (where the face turns to) is squeezed, as a rotation foreshortens it."""
    from consent_service.biometrics.liveness import dlib_landmarks

    rgb = np.asarray(picture)
    nose = round(dlib_landmarks(rgb, _face_box(rgb))["nose_tip"][0][0])
    near = picture.crop((0, 0, nose, HEIGHT)).resize((round(nose * squeeze), HEIGHT))
    far = picture.crop((nose, 0, WIDTH, HEIGHT))
    out = Image.new("RGB", (near.width + far.width, HEIGHT))
    out.paste(near, (0, 0))
    out.paste(far, (near.width, 0))
    return out.resize((WIDTH, HEIGHT))


def poses(photos: dict[str, Path]) -> dict[str, Image.Image]:
    """Measured: front yaw -0.02, right -0.18, left +0.19; the turned faces stay within 0.49 of
    the front one (the same-person tolerance is 0.6)."""
    right = turn_further(portrait(photos["obama2.jpg"]))
    return {"front": portrait(photos["obama.jpg"]), "right": right, "left": ImageOps.mirror(right)}


def write_y4m(path: Path, segments: list[tuple[str, Image.Image]], seconds: float = 1.5) -> Path:
    """One segment per (pose, picture), each `seconds` long, marked with its pose's colour."""
    frames_each = max(1, round(seconds * FPS))
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for pose, picture in segments:
            marked = picture.copy()
            marked.paste(MARKS[pose], (0, 0, MARK_SIZE, MARK_SIZE))
            y, cb, cr = marked.convert("YCbCr").split()
            half = (WIDTH // 2, HEIGHT // 2)
            frame = (
                b"FRAME\n"
                + y.tobytes()
                + cb.resize(half, Image.Resampling.BILINEAR).tobytes()
                + cr.resize(half, Image.Resampling.BILINEAR).tobytes()
            )
            out.write(frame * frames_each)
    return path


# Run in the page: which pose the camera shows now (the colour of the corner square), or null.
READ_MARK = """(video) => {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  if (!canvas.width) return null;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(video, 0, 0);
  const [r, g, b] = ctx.getImageData(MARK_AT, MARK_AT, 1, 1).data;
  if (r > 160 && g < 100 && b < 100) return "front";
  if (g > 160 && r < 100 && b < 100) return "left";
  if (b > 160 && r < 100 && g < 100) return "right";
  return null;
}""".replace("MARK_AT", str(MARK_SIZE // 2))

# Run in the page: press Capture only while the camera shows `pose` (checked in the same turn of
# the event loop as the click, so the picture taken is of that pose).
CAPTURE_WHEN = """([video, pose]) => {
  const mark = (READ_MARK)(video);
  if (mark !== pose) return false;
  document.getElementById("live-capture").click();
  return true;
}""".replace("READ_MARK", READ_MARK)
