"""mmv.threads: the free-core reading and the thread counts it leads to, on planted /proc/stat readings."""

from __future__ import annotations

import os
import time

import pytest
import torch

from mmv import threads as threads_lib
from mmv.threads import ThreadGovernor, read_machine_busy


class PlantedMachine:
    """A machine whose other processes keep ``others`` cores busy while this process uses ``own`` cores.

    Its clock is the governor's (``time.monotonic``): each reading reports the CPU seconds that would have
    passed since the machine was created at those rates.
    """

    def __init__(self, others: float, own: float) -> None:
        self.others, self.own_rate = others, own
        self.t0 = time.monotonic()
        self.applied: list[int] = []

    def reader(self) -> tuple[float, float]:
        dt = time.monotonic() - self.t0
        busy = (self.others + self.own_rate) * dt
        return busy, 2.0 * dt

    def own(self) -> float:
        return self.own_rate * (time.monotonic() - self.t0)


def governor(machine: PlantedMachine, max_threads: int = 2, cores: int = 2) -> ThreadGovernor:
    g = ThreadGovernor(
        max_threads=max_threads,
        interval_s=0.0,
        min_window_s=0.02,
        reader=machine.reader,
        own=machine.own,
        set_threads=machine.applied.append,
    )
    g.cores = cores
    g.max_threads = max_threads
    return g


@pytest.mark.parametrize(
    ("others", "expected"),
    [(0.0, 2), (0.2, 2), (0.8, 1), (1.0, 1), (1.3, 1), (2.0, 1)],
)
def test_the_thread_count_is_the_cores_others_leave(others: float, expected: int) -> None:
    machine = PlantedMachine(others=others, own=1.0)
    g = governor(machine)
    assert g.update() == expected
    assert g.others == pytest.approx(others, abs=0.05)
    assert machine.applied[-1] == expected


def test_own_spinning_threads_are_not_taken_for_a_competitor() -> None:
    # Two spinning threads of ours fill both cores: the machine reads 100 % busy, and all of it is ours.
    machine = PlantedMachine(others=0.0, own=2.0)
    assert governor(machine).update() == 2


def test_the_dead_band_keeps_the_present_count_near_half_a_core() -> None:
    machine = PlantedMachine(others=0.5, own=1.0)
    g = governor(machine)
    assert g.update() == 2  # from 2 threads, half a core is not yet a core
    g.threads = 1
    assert g.update() == 1  # and from 1 thread it is not yet free
    machine.others = 0.9
    assert g.update() == 1
    machine.others = 0.1
    assert g.update() == 2


def test_more_cores_and_a_cap() -> None:
    machine = PlantedMachine(others=1.0, own=1.0)
    assert governor(machine, max_threads=8, cores=8).update() == 7
    assert governor(machine, max_threads=4, cores=8).update() == 4


def test_updates_within_the_interval_reuse_the_last_count() -> None:
    machine = PlantedMachine(others=0.0, own=1.0)
    g = governor(machine)
    g.interval_s = 3600.0
    assert g.update() == 2
    machine.others = 2.0
    assert g.update() == 2  # not re-measured yet


def test_without_proc_stat_the_count_is_left_alone(tmp_path) -> None:
    applied: list[int] = []
    g = ThreadGovernor(max_threads=1, reader=lambda: None, set_threads=applied.append)
    assert not g.enabled
    assert g.update() == 1
    assert read_machine_busy(str(tmp_path / "missing")) is None
    (tmp_path / "stat").write_text("intr 1 2 3\n")
    assert read_machine_busy(str(tmp_path / "stat")) is None


def test_the_real_reading_counts_a_busy_loop_of_this_process_as_its_own() -> None:
    if read_machine_busy() is None:
        pytest.skip("no /proc/stat on this system")
    before = torch.get_num_threads()
    try:
        g = ThreadGovernor(max_threads=1, interval_s=0.0, min_window_s=0.05)
        g.update()
        time.sleep(0.4)  # a window in which this process sleeps
        g.update()
        resting = g.others
        end = time.monotonic() + 0.4
        while time.monotonic() < end:  # a window in which it keeps one core busy
            pass
        g.update()
        # Counted as another process's, the loop would add about one core; whatever else the machine runs
        # stays in both readings.
        assert g.others - resting < 0.5
    finally:
        torch.set_num_threads(before)


def test_read_machine_busy_parses_the_aggregate_line(tmp_path) -> None:
    hz = float(os.sysconf("SC_CLK_TCK"))
    (tmp_path / "stat").write_text("cpu  100 5 20 800 10 1 2 3 0 0\ncpu0 50 2 10 400 5 0 1 1 0 0\n")
    busy, total = threads_lib.read_machine_busy(str(tmp_path / "stat"))
    assert busy == pytest.approx((100 + 5 + 20 + 1 + 2 + 3) / hz)
    assert total == pytest.approx((100 + 5 + 20 + 800 + 10 + 1 + 2 + 3) / hz)
