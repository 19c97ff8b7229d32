"""``passes.quantize.reduce_range: null`` follows the CPU: 7-bit weights where x86 int8 sums saturate."""

import pytest

from optimizer import host
from optimizer.config import Device, HardwareConfig
from optimizer.passes.quantize import QuantizeConfig, reduce_range


@pytest.mark.parametrize("machine, flags, device, expected", [
    ("x86_64", {"avx2", "fma"}, Device.cpu, True),  # AVX2 only: u8*s8 pairs saturate in int16
    ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, Device.cpu, False),
    ("x86_64", {"avx2", "avx_vnni"}, Device.cpu, False),
    ("aarch64", {"asimd"}, Device.cpu, False),
    ("x86_64", {"avx2"}, Device.cuda, False),  # TensorRT and CUDA kernels do not use the AVX2 path
    ("x86_64", set(), Device.cpu, False),  # flags unknown: keep ONNX Runtime's default
])
def test_null_follows_the_cpu(monkeypatch, machine, flags, device, expected):
    monkeypatch.setattr(host.platform, "machine", lambda: machine)
    monkeypatch.setattr(host, "cpu_flags", lambda: frozenset(flags))
    assert reduce_range(QuantizeConfig(), HardwareConfig(device=device)) is expected


def test_an_explicit_setting_wins(monkeypatch):
    monkeypatch.setattr(host, "cpu_flags", lambda: frozenset({"avx2"}))
    assert reduce_range(QuantizeConfig(reduce_range=False), HardwareConfig()) is False
    assert reduce_range(QuantizeConfig(reduce_range=True), HardwareConfig()) is True


def test_decided_at_plan_time_so_it_enters_the_cache_key(monkeypatch):
    from optimizer.recipe.compose import compose
    from optimizer.recipe.plan import plan

    monkeypatch.setattr(host, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(host.platform, "machine", lambda: "x86_64")
    steps = {s.label: s for s in plan(compose("int8"))}
    assert steps["quantize"].config.reduce_range is True
