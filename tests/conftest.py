"""Fixtures shared by all tests; plain helpers live in grid_helpers.py."""
import pytest

from grid_helpers import REFERENCE_DATA


@pytest.fixture
def reference_data():
    if not REFERENCE_DATA.is_dir():
        pytest.skip(f"reference data folder {REFERENCE_DATA} is absent (it sits beside the checkout in CI)")
    return REFERENCE_DATA
