"""The soak's seeded plan: phases, and the faults of the chaos phase in time order.

Pure: the same seed and length give the same plan, so a failing soak can be run
again as it was. Three phases share the run:

- `chaos`: the gateway is killed with SIGKILL a few seconds after each start
  (its wall clock set an hour ahead, behind or right at each start), while one
  fault at a time hits a peer: Odoo answering 5xx, Odoo slow, Odoo restarted
  in the middle of a request, Odoo down for a stretch, the broker restarted,
  the state directory's filesystem full, the Modbus link answering garbage;
- `outage`: Odoo and the broker are both down for a long stretch while the
  plant goes on and one gateway lives through it (the consecutive failures
  and the backlog pile up);
- `recovery`: everything is back, the plant stops, the backlog drains.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

KINDS = ("odoo_5xx", "odoo_slow", "odoo_restart", "odoo_down", "broker_restart", "disk_full", "garbage")


@dataclass(frozen=True)
class Fault:
    at: float          # seconds from the start of the run
    kind: str
    duration: float    # how long it lasts (for a restart: how long the peer stays down)
    status: int = 0    # odoo_5xx: the HTTP status
    latency: float = 0.0   # odoo_slow / odoo_restart: seconds each reply is held back


@dataclass(frozen=True)
class Plan:
    seconds: float
    chaos_end: float
    outage_end: float
    plant_end: float
    faults: tuple[Fault, ...]
    kill_after: tuple[float, ...]   # seconds after each gateway start (its tasks running) that it is killed
    offsets_h: tuple[int, ...]      # the wall-clock offset of each gateway start

    def describe(self) -> dict[str, float | int]:
        return {"chaos_s": round(self.chaos_end, 1), "outage_s": round(self.outage_end - self.chaos_end, 1),
                "plant_s": round(self.plant_end, 1), "faults": len(self.faults)}


def plan(seconds: float, seed: int, kills: int | None = None, sink_timeout: float = 1.0) -> Plan:
    """The plan of a run of `seconds`: chaos long enough for `kills` kill -9 cycles (at ~4.5 s each: start, run, kill)."""
    rng = random.Random(seed)
    wanted_chaos = (kills or 0) * 4.5
    chaos_end = min(max(0.35 * seconds, wanted_chaos), 0.55 * seconds)
    outage_end = 0.88 * seconds  # the outage: 10^6 failed attempts want its length
    plant_end = 0.92 * seconds
    faults: list[Fault] = []
    t = 3.0
    kinds: list[str] = []
    while True:
        if not kinds:
            kinds = list(KINDS)
            rng.shuffle(kinds)
        kind = kinds.pop()
        duration = {"odoo_5xx": rng.uniform(2, 6), "odoo_slow": rng.uniform(2, 6),
                    "odoo_restart": rng.uniform(0.5, 2), "odoo_down": rng.uniform(4, 12),
                    "broker_restart": rng.uniform(0.5, 3), "disk_full": rng.uniform(2, 6),
                    "garbage": rng.uniform(2, 5)}[kind]
        if t + duration > chaos_end - 1.0:
            break
        faults.append(Fault(at=round(t, 3), kind=kind, duration=round(duration, 3),
                            status=rng.choice((500, 502, 503, 504)) if kind == "odoo_5xx" else 0,
                            # slow: around the sink's timeout, some answers late but in time, some too late
                            latency=round(rng.uniform(0.3, 1.6) * sink_timeout, 3) if kind == "odoo_slow"
                            else (round(3 * sink_timeout, 3) if kind == "odoo_restart" else 0.0)))
        t += duration + rng.uniform(0.5, 3.0)
    kill_after = tuple(round(rng.uniform(0.2, 3.0), 3) for _ in range(10_000))
    offsets = tuple(rng.choice((-1, 0, 0, 1)) for _ in range(10_000))
    return Plan(seconds=seconds, chaos_end=chaos_end, outage_end=outage_end, plant_end=plant_end,
                faults=tuple(faults), kill_after=kill_after, offsets_h=offsets)
