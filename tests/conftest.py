"""Shared fixtures: one ``device`` fixture runs each test on every available device."""
import os

# Tests use small arrays: one BLAS thread is faster there and keeps two test processes (or
# a test run beside other work) from fighting over the two cores. Benchmarks do not do this.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings

import minidl as md

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption("--device", action="append", default=None, choices=["cpu", "cuda"],
                     help="run device-parametrised tests only on these devices "
                          "(repeatable; default: every available device)")


def pytest_collection_modifyitems(config, items):
    wanted = config.getoption("--device")
    if not wanted:
        return
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        dev = callspec.params.get("device") if callspec else None
        (drop if dev is not None and dev not in wanted else keep).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)


@pytest.fixture(params=md.testing.device_params(), scope="session")
def device(request):
    """'cpu', and 'cuda' where CuPy sees a GPU (else skipped with the reason)."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    md.manual_seed(0)
    np.random.seed(0)
    yield
