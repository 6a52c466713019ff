"""Energy accounting: RAPL counters from a fake powercap tree, the power model, and the
meter's attribution of energy to models by busy time, on a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tierwise.errors import ConfigError
from tierwise.spec.tiers import Hardware, PowerModel
from tierwise.telemetry.energy import EnergyMeter, RaplReader


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def zone(root: Path, folder: str, name: str, uj: int, max_uj: int = 1_000_000_000) -> Path:
    path = root / folder
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def set_uj(path: Path, uj: int) -> None:
    (path / "energy_uj").write_text(f"{uj}\n")


# -- the power model (spec) -----------------------------------------------------------


def test_power_model_orders_its_watts() -> None:
    pi = PowerModel(idle_watts=3.0, active_watts=7.0, peak_watts=8.65)
    assert pi.watts_at(0.0) == 3.0
    assert pi.watts_at(0.5) == pytest.approx(5.0)
    assert pi.watts_at(4.0) == 7.0  # utilization is capped at 1
    with pytest.raises(ValidationError, match="active_watts >= idle_watts"):
        PowerModel(idle_watts=5.0, active_watts=3.0)
    with pytest.raises(ValidationError, match="peak_watts >= active_watts"):
        PowerModel(idle_watts=1.0, active_watts=3.0, peak_watts=2.0)
    with pytest.raises(ValidationError):
        PowerModel(active_watts=0.0)


def test_hardware_carries_an_optional_power_model() -> None:
    plain = Hardware(cpu_cores=4, memory_gib=8.0)
    assert plain.power is None
    gpu = Hardware.model_validate(
        {"cpu_cores": 8, "memory_gib": 32.0, "power": {"idle_watts": 60, "active_watts": 300}}
    )
    assert gpu.power == PowerModel(idle_watts=60.0, active_watts=300.0)


# -- RAPL ------------------------------------------------------------------------------


def test_rapl_sums_packages_and_skips_subzones_and_psys(tmp_path: Path) -> None:
    p0 = zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000)
    zone(tmp_path, "intel-rapl:0:0", "core", 4_000_000)  # part of package 0
    p1 = zone(tmp_path, "intel-rapl:1", "package-1", 1_000_000)
    zone(tmp_path, "intel-rapl:2", "psys", 9_000_000)  # contains the packages
    (tmp_path / "intel-rapl").mkdir()  # the control type, no counter
    reader = RaplReader(tmp_path)
    assert reader.available
    assert [z.name for z in reader.zones] == ["package-0", "package-1"]
    assert reader.energy_j() == 0.0
    set_uj(p0, 7_000_000)
    set_uj(p1, 1_500_000)
    assert reader.energy_j() == pytest.approx(2.5)


def test_rapl_uses_psys_when_it_is_the_only_zone(tmp_path: Path) -> None:
    psys = zone(tmp_path, "intel-rapl:0", "psys", 0)
    reader = RaplReader(tmp_path)
    assert reader.energy_j() == 0.0
    set_uj(psys, 3_000_000)
    assert reader.energy_j() == pytest.approx(3.0)


def test_rapl_counter_wraps_around(tmp_path: Path) -> None:
    path = zone(tmp_path, "intel-rapl:0", "package-0", 990_000, max_uj=1_000_000)
    reader = RaplReader(tmp_path)
    assert reader.energy_j() == 0.0
    set_uj(path, 20_000)  # wrapped: 10_000 to the top, then 20_000
    assert reader.energy_j() == pytest.approx(0.03)
    set_uj(path, 520_000)
    assert reader.energy_j() == pytest.approx(0.53)


def test_rapl_absent_or_unreadable_is_not_available(tmp_path: Path) -> None:
    assert not RaplReader(tmp_path / "missing").available
    assert RaplReader(tmp_path / "missing").energy_j() is None
    broken = tmp_path / "broken"
    path = zone(broken, "intel-rapl:0", "package-0", 0)
    set_uj(path, 0)
    (path / "energy_uj").write_text("permission denied\n")
    assert not RaplReader(broken).available
    plain_file = tmp_path / "file"
    plain_file.write_text("x")
    assert not RaplReader(plain_file).available


# -- the meter ---------------------------------------------------------------------------


def test_estimated_energy_is_active_watts_times_busy_time() -> None:
    clock = Clock()
    meter = EnergyMeter(
        power=PowerModel(idle_watts=3.0, active_watts=7.0), window_s=1.0, clock=clock
    )
    assert meter.source == "estimated"
    for model, busy_s, gap_s in (("detector", 0.2, 0.1), ("classifier", 0.05, 0.05),
                                 ("detector", 0.1, 0.0)):  # fmt: skip
        clock.now += gap_s + busy_s  # one batch after the other
        meter.account(model, busy_s)
    assert meter.model("detector").estimated_j == 0.0  # the window is still open
    meter.settle()
    assert meter.model("detector").estimated_j == pytest.approx(7.0 * 0.3)
    assert meter.model("detector").busy_s == pytest.approx(0.3)
    assert meter.model("classifier").estimated_j == pytest.approx(0.35)
    assert meter.model("classifier").measured_j == 0.0
    clock.now += 0.5  # one second since the meter started; 0.35 s of it busy
    assert meter.power_watts() == pytest.approx(3.0 + 4.0 * 0.35)
    clock.now += 2.0  # a window with nothing run: idle draw only
    assert meter.power_watts() == pytest.approx(3.0)


def test_estimated_energy_of_overlapping_batches_stays_within_wall_time() -> None:
    clock = Clock()
    meter = EnergyMeter(
        power=PowerModel(idle_watts=2.0, active_watts=10.0), window_s=5.0, clock=clock
    )
    clock.now += 1.0
    meter.account("a", 1.0)  # two instances of "a" and one of "b", all busy at once
    meter.account("a", 1.0)
    meter.account("b", 0.5)
    meter.settle()
    a, b = meter.model("a"), meter.model("b")
    assert a.busy_s == pytest.approx(2.0)  # busy time is each batch's own
    assert a.estimated_j + b.estimated_j == pytest.approx(10.0 * 1.0)  # one wall second
    assert a.estimated_j == pytest.approx(10.0 * 2.0 / 2.5)  # split by busy time
    assert b.estimated_j == pytest.approx(10.0 * 0.5 / 2.5)
    assert meter.power_watts() == pytest.approx(10.0)  # fully busy, not past it
    clock.now += 0.5
    meter.account("b", 0.7)  # began 0.2 s before the last batch ended: 0.5 s is new
    meter.settle()
    assert b.estimated_j == pytest.approx(2.0 + 10.0 * 0.5)
    assert a.estimated_j == pytest.approx(8.0)  # a did not run in this window
    clock.now += 1.0
    meter.account("a", 0.25)  # alone again: active watts x its busy time
    meter.settle()
    assert a.estimated_j == pytest.approx(8.0 + 2.5)


def test_estimated_energy_never_passes_active_watts_times_wall_time() -> None:
    clock = Clock()
    meter = EnergyMeter(power=PowerModel(active_watts=4.0), window_s=0.1, clock=clock)
    start = clock.now
    # three workers, each running 0.3 s batches back to back, ends staggered, two models
    ends = [0.3, 0.4, 0.5]
    total = 0.0
    for step in range(60):
        worker = min(range(3), key=lambda w: ends[w])
        clock.now = start + ends[worker]
        meter.account("m" if worker else "n", 0.3)
        ends[worker] += 0.3
        if step % 7 == 0:
            meter.settle()
            total = sum(e.estimated_j for e in meter.models.values())
            assert total <= 4.0 * (clock.now - start) + 1e-9
    meter.settle()
    total = sum(e.estimated_j for e in meter.models.values())
    assert total == pytest.approx(4.0 * (clock.now - start))  # busy all the time
    n, m = meter.model("n"), meter.model("m")
    # about their busy shares (the first batch, alone for 0.3 s, tilts it to n)
    assert n.estimated_j / m.estimated_j == pytest.approx(n.busy_s / m.busy_s, rel=0.15)


def test_estimated_power_keeps_its_value_within_a_window() -> None:
    clock = Clock()
    meter = EnergyMeter(
        power=PowerModel(idle_watts=2.0, active_watts=4.0), window_s=1.0, clock=clock
    )
    clock.now += 1.0
    meter.account("m", 1.0)
    assert meter.power_watts() == pytest.approx(4.0)
    clock.now += 0.1
    meter.account("m", 0.1)
    assert meter.power_watts() == pytest.approx(4.0)  # the window is not over


def test_measured_energy_is_split_by_busy_share(tmp_path: Path) -> None:
    path = zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    clock = Clock()
    meter = EnergyMeter(
        power=PowerModel(idle_watts=1.0, active_watts=100.0),
        rapl=RaplReader(tmp_path),
        window_s=0.1,
        clock=clock,
    )
    assert meter.source == "measured"
    clock.now += 0.05
    meter.account("a", 0.03)  # within the window: no read yet
    set_uj(path, 3_000_000)  # 2 J over the window
    clock.now += 0.075
    meter.account("b", 0.01)  # closes the window of 0.125 s, 0.04 s busy
    a, b = meter.model("a"), meter.model("b")
    charged = 2.0 * 0.04 / 0.125  # the busy share of the window's energy
    assert a.measured_j == pytest.approx(charged * 0.75)
    assert b.measured_j == pytest.approx(charged * 0.25)
    assert a.estimated_j == b.estimated_j == 0.0  # the power model is not used
    assert meter.power_watts() == pytest.approx(16.0)


def test_measured_window_fully_busy_charges_all_energy(tmp_path: Path) -> None:
    path = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    clock = Clock()
    meter = EnergyMeter(rapl=RaplReader(tmp_path), window_s=0.1, clock=clock)
    set_uj(path, 500_000)
    clock.now += 0.2
    meter.account("m", 0.3)  # two workers busy at once: more busy time than wall time
    assert meter.model("m").measured_j == pytest.approx(0.5)


def test_idle_energy_read_at_scrape_is_charged_to_nobody(tmp_path: Path) -> None:
    path = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    clock = Clock()
    meter = EnergyMeter(rapl=RaplReader(tmp_path), window_s=0.1, clock=clock)
    assert meter.power_watts() is None  # no window closed yet
    meter.account("m", 0.0)
    set_uj(path, 30_000_000)
    clock.now += 10.0
    assert meter.power_watts() == pytest.approx(3.0)
    assert meter.model("m").measured_j == 0.0


def test_measured_falls_back_when_the_counter_stops_answering(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    clock = Clock()
    meter = EnergyMeter(
        power=PowerModel(idle_watts=1.0, active_watts=5.0),
        rapl=RaplReader(tmp_path),
        window_s=0.1,
        clock=clock,
    )
    (path / "energy_uj").unlink()
    clock.now += 1.0
    meter.account("m", 0.5)
    assert meter.source == "estimated"
    assert "stopped answering" in caplog.text
    meter.account("m", 1.0)
    assert meter.model("m").estimated_j == pytest.approx(5.0)
    assert meter.model("m").busy_s == pytest.approx(1.5)


def test_without_counter_or_power_model_only_busy_time_counts(tmp_path: Path) -> None:
    meter = EnergyMeter(rapl=RaplReader(tmp_path / "none"), clock=Clock())
    assert meter.source is None
    meter.account("m", 0.25)
    assert meter.model("m").busy_s == 0.25
    assert meter.model("m").estimated_j == meter.model("m").measured_j == 0.0
    assert meter.power_watts() is None


def test_window_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="window_s"):
        EnergyMeter(window_s=0.0)
