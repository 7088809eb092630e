"""Crash safety, a full disk, and order under load: the store's promises under stress."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest

from store.queue import Store, StoreFull, StoreOptions

WRITER = r"""
import json, sys
from store.queue import Store
path, start = sys.argv[1], int(sys.argv[2])
s = Store(path, sinks=["odoo"])
i = start
while True:
    batch = [{"id": f"evt_{i + k}", "kind": "production", "data": {"n": i + k, "pad": "p" * (i % 50)}}
             for k in range(1 + i % 7)]
    r = s.append(batch, {"rule/last": str(i).encode()})
    print("APPENDED", json.dumps(r.seqs, separators=(",", ":")), i, len(batch), flush=True)
    got = s.read("odoo", 5)
    if got and i % 3 == 0:
        s.ack("odoo", got)
        print("ACKED", got[-1].seq, flush=True)
    i += len(batch)
"""


def test_sigkill_at_random_moments_never_loses_an_acknowledged_append_nor_shows_half_a_batch(tmp_path):
    rng = random.Random(1234)
    store_dir = tmp_path / "store"
    appended: dict[int, int] = {}  # seq -> n of the event that append() returned for
    last_cursor = 0
    next_n = 0
    for round_no in range(25):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(store_dir), str(next_n)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.15, 0.5))  # chaos timing: kill wherever the writer happens to be
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        lines = out.splitlines()
        if not out.endswith("\n") and lines:
            lines.pop()  # the kill cut this line short
        for line in lines:
            if line.startswith("APPENDED"):
                _, seqs, start, count = line.split(" ", 3)
                for k, seq in enumerate(json.loads(seqs)):
                    appended[seq] = int(start) + k
                next_n = max(next_n, int(start) + int(count))
            elif line.startswith("ACKED"):
                last_cursor = max(last_cursor, int(line.split()[1]))
        assert "Traceback" not in err, err

        s = Store(store_dir, sinks=["odoo"])
        cursor = s.cursor("odoo")
        assert cursor >= last_cursor, f"round {round_no}: cursor moved back from {last_cursor} to {cursor}"
        present = {st.seq: st.event for st in s.read("odoo", 10**6)}
        for seq, n in appended.items():
            if seq > cursor:
                assert seq in present, f"round {round_no}: acknowledged append seq {seq} lost"
                assert present[seq]["data"]["n"] == n and present[seq]["id"] == f"evt_{n}"
        # all-or-nothing: every stored event belongs to a complete batch (consecutive n, same batch size)
        by_n = sorted(ev["data"]["n"] for ev in present.values())
        assert len(by_n) == len(set(by_n))
        # the rule state moved with its batch: it names the start of the newest stored batch
        last_state = s.get_state("rule/last")
        if s.last_seq() in present:
            newest_n = present[s.last_seq()]["data"]["n"]
            start = int(last_state)
            assert newest_n == start + (1 + start % 7) - 1, f"round {round_no}: state and events diverged"
        next_n = max([next_n] + [ev["data"]["n"] + 1 for ev in present.values()])
        s.close()
    assert len(appended) > 50, "the writer never got going; the test proved nothing"


@pytest.fixture()
def small_disk(tmp_path):
    """A 3 MiB tmpfs: a real filesystem that runs out of space."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_a_clear_refusal_without_corruption_and_recovers_when_space_returns(small_disk):
    filler = small_disk / "filler.bin"
    store_dir = small_disk / "store"
    opts = StoreOptions(map_size=1024 * 1024, max_map_size=64 * 1024 * 1024)
    s = Store(store_dir, sinks=["odoo"], options=opts)
    s.append([{"id": "evt_first", "kind": "production", "data": {}}])
    with open(filler, "wb") as fh:  # eat the rest of the disk
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    stored = 1
    with pytest.raises(StoreFull) as info:
        for i in range(100_000):
            s.append([{"id": f"evt_{i}", "kind": "production", "data": {"pad": "x" * 2000}}])
            stored += 1
    assert "full" in str(info.value)
    s.close()
    filler.unlink()
    s = Store(store_dir, sinks=["odoo"], options=opts)
    events = s.read("odoo", 10**6)
    assert len(events) == stored and events[0].event["id"] == "evt_first"
    assert s.append([{"id": "evt_after", "kind": "production", "data": {}}]).seqs == [stored + 1]


def test_a_disk_that_cuts_a_commit_short_is_full_not_a_crash(small_disk):
    """Found by the soak: a file system shrunk to what it holds made LMDB's commit fail with EIO
    (its page write came back short), which the store did not take as full: the device tasks died."""
    store_dir = small_disk / "store"
    opts = StoreOptions(map_size=1024 * 1024, max_map_size=64 * 1024 * 1024)
    s = Store(store_dir, sinks=["odoo"], options=opts)
    for i in range(50):
        s.append([{"id": f"evt_{i}", "kind": "production", "data": {"pad": "x" * 9000}}])
    used_kib = int(subprocess.run(["du", "-sk", str(small_disk)], capture_output=True, text=True,
                                  check=True).stdout.split()[0])
    subprocess.run(["mount", "-o", f"remount,size={used_kib + 2}k", str(small_disk)], check=True)
    refused = 0
    for i in range(50, 150):
        try:
            s.append([{"id": f"evt_{i}", "kind": "production", "data": {"pad": "x" * 9000}}])
        except StoreFull as exc:
            refused += 1
            assert "full" in str(exc)
    assert refused, "the shrunken disk never filled: the test proved nothing"
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    s.append([{"id": "evt_after", "kind": "production", "data": {}}])
    s.close()
    s = Store(store_dir, sinks=["odoo"], options=opts)
    ids = [e.event["id"] for e in s.read("odoo", 10**6)]
    assert ids[:50] == [f"evt_{i}" for i in range(50)] and ids[-1] == "evt_after"
    assert len(ids) == len(set(ids)) == 150 - refused + 1


def test_a_million_events_are_read_in_order_by_two_sinks_at_different_speeds(tmp_path):
    s = Store(tmp_path, sinks=["fast", "slow"], options=StoreOptions(map_size=512 * 1024 * 1024))
    total = 1_000_000
    for start in range(0, total, 10_000):
        s.append([{"id": f"e{i}", "kind": "production", "data": {}} for i in range(start, start + 10_000)])
    expected = {"fast": 1, "slow": 1}
    while expected["fast"] <= total or expected["slow"] <= total:
        for sink, size in (("fast", 20_000), ("slow", 7_000)):
            batch = s.read(sink, size)
            if not batch:
                continue
            seqs = [b.seq for b in batch]
            assert seqs == list(range(expected[sink], expected[sink] + len(batch)))
            s.ack(sink, batch)
            expected[sink] += len(batch)
            # nothing is deleted before both acknowledged it
            assert s.stored_count() == total - (min(expected.values()) - 1)
    assert s.stored_count() == 0
