"""The test suite's own guarantees: a green CI includes the PyTorch tests, and test servers get
ports no other process is handed meanwhile."""

import sys

import pytest
from local_ports import _ephemeral_start, free_ports
from torch_or_skip import REQUIRE_VARIABLE, import_torch


def test_a_missing_torch_skips_locally_and_fails_where_required(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(REQUIRE_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="torch is not installed"):
        import_torch()
    monkeypatch.setenv(REQUIRE_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match="requires the PyTorch tests"):
        import_torch()
    monkeypatch.delenv(REQUIRE_VARIABLE)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="requires the PyTorch tests"):
        import_torch()
    monkeypatch.setenv(REQUIRE_VARIABLE, "0")  # an explicit 0 wins over CI
    with pytest.raises(pytest.skip.Exception):
        import_torch()


def test_ports_are_outside_the_ephemeral_range_and_apart_per_worker(monkeypatch):
    bands = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        ports = free_ports(3)
        assert len(set(ports)) == 3 and max(ports) < _ephemeral_start()
        bands.append((min(ports), max(ports)))
    assert bands[1][1] < bands[0][0]  # the two workers' bands do not overlap
