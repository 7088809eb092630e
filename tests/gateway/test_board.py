"""The machine board (gateway.board): parts, scrap and rate per machine, on an injected clock."""
from __future__ import annotations

from typing import Any

from gateway.board import BUCKET_S, MAX_MACHINES, WINDOW_S, MachineBoard
from gateway.events import Event


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ev(kind: str, qty: float, machine: str = "CNC-01", **data: Any) -> Event:
    return Event(id=f"{machine}-{kind}-{qty}", kind=kind, ts="2027-01-15T08:00:00Z", gateway="gw",
                 source={"machine": machine, "tag": "parts"}, data={"quantity": qty, **data},
                 context={"machine": machine})


def test_parts_and_scrap_are_counted_per_machine_and_held_jumps_are_not() -> None:
    board = MachineBoard(Clock())
    board.count([ev("production", 3), ev("scrap", 1), ev("production", 2, machine="PRESS-2"),
                 ev("production", 500, suspect="jump above max_rate"), ev("alarm", 1)])
    assert board.snapshot("CNC-01") | {"rate_per_min": None} == {
        "good": 3.0, "scrap": 1.0, "last_event": 1_800_000_000.0, "rate_per_min": None, "rate_window_s": WINDOW_S}
    assert board.snapshot("PRESS-2")["good"] == 2.0
    assert board.snapshot("LATHE-9") == {"good": 0.0, "scrap": 0.0, "last_event": None, "rate_per_min": None,
                                         "rate_window_s": WINDOW_S}


def test_the_rate_is_the_last_five_minutes_good_parts_per_minute() -> None:
    clock = Clock()
    board = MachineBoard(clock)
    assert board.rate("CNC-01") is None  # no part yet: no rate, not zero
    # 2 parts every 10 s for ten minutes: 12 parts a minute
    for _ in range(60):
        board.count([ev("production", 2), ev("scrap", 5)])  # scrap is not in the rate
        clock.t += 10
    assert board.rate("CNC-01") == 12.0
    # the machine stops: the rate falls to zero as its last parts leave the window
    clock.t += WINDOW_S / 2
    assert 0 < board.rate("CNC-01") < 12.0  # type: ignore[operator]
    clock.t += WINDOW_S / 2
    assert board.rate("CNC-01") == 0.0
    assert board.snapshot("CNC-01")["good"] == 120.0


def test_a_machine_that_just_started_is_rated_over_its_own_time_not_the_whole_window() -> None:
    clock = Clock()
    board = MachineBoard(clock)
    board.count([ev("production", 5)])
    clock.t += 30
    board.count([ev("production", 5)])
    assert board.rate("CNC-01") == 20.0  # 10 parts in 30 s, not 10 parts in 5 minutes


def test_a_year_of_parts_keeps_the_board_bounded() -> None:
    clock = Clock()
    board = MachineBoard(clock)
    for _ in range(int(365 * 86400 / 3600)):  # a year, one count an hour, plus a busy hour at the end
        board.count([ev("production", 1)])
        clock.t += 3600
    for _ in range(int(3600 / BUCKET_S)):
        board.count([ev("production", 1)])
        clock.t += BUCKET_S
    assert len(board.machines["CNC-01"].buckets) == WINDOW_S // BUCKET_S
    assert board.snapshot("CNC-01")["good"] == 8760 + 360
    for i in range(MAX_MACHINES + 50):
        board.count([ev("production", 1, machine=f"M{i}")])
    assert len(board.machines) == MAX_MACHINES
