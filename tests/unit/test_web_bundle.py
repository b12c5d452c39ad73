"""The page ships inside the Lambda bundle: `chalice package` must carry every file chalicelib/web serves."""

from __future__ import annotations

import zipfile

import pytest

from chalicelib.web.assets import STATIC, names
from tests.unit.test_deploy_package import cloudformation, project  # noqa: F401  (the fixtures that build the bundle)

pytestmark = pytest.mark.process  # chalice package runs in a subprocess


def test_the_bundle_carries_the_web_page(cloudformation):  # noqa: F811
    _, out, _ = cloudformation
    with zipfile.ZipFile(out / "deployment.zip") as bundle:
        packed = set(bundle.namelist())
    wanted = {f"chalicelib/web/static/{name}" for name in names()}
    assert wanted <= packed and len(wanted) == len(list(STATIC.iterdir()))
