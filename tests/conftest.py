import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Exports and counts go to a per-session cache, never the user's."""
    os.environ["MODBENCH_CACHE"] = str(tmp_path_factory.mktemp("modbench-cache"))
    yield
