"""The file drop driver in temp dirs: exactly once, half-written files, quarantine."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from drivers.base import Quality
from tests.drivers.filedrop import (GOOD_CSV, DictState, Puller, make_driver, wait_until,
                                    write)

LOGGER = "linebridge.drivers.filedrop"


def events(caplog, event):
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and f"event={event} " in r.getMessage()]


def test_rows_become_typed_samples_with_their_times_and_the_file_moves_to_processed(tmp_path):
    csv_text = ("Zeit;Teile;Temperatur;Auftrag\r\n"
                "05.03.2024 08:00:00;100;21,5;WO/0001\r\n"
                "31.03.2024 03:30:00;101;-0,25;WO/0002\r\n")
    write(tmp_path / "press-0800.csv", csv_text)
    state = DictState()
    driver = make_driver(tmp_path, state, delimiter=";", decimal=",",
                         timezone="Europe/Berlin", timestamp_column="Zeit",
                         timestamp_format="%d.%m.%Y %H:%M:%S",
                         columns={"parts": "Teile", "temp": "Temperatur", "order": "Auftrag"})

    async def scenario():
        pull = Puller(driver)
        await wait_until(lambda: pull.batches, what="the file's batch")
        await wait_until(lambda: (tmp_path / "processed" / "press-0800.csv").exists(),
                         what="the move to processed/")
        await pull.close()
        return pull.batches

    [batch] = asyncio.run(scenario())
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2024, 3, 5, 8, 0, tzinfo=berlin).timestamp()
    second = datetime(2024, 3, 31, 3, 30, tzinfo=berlin).timestamp()  # summer time, UTC+2
    assert second - first == 26 * 86400 - 3600 + 3.5 * 3600 - 8 * 3600
    assert [(s.tag, s.value, s.source_ts) for s in batch] == [
        ("parts", 100, first), ("temp", 21.5, first), ("order", "WO/0001", first),
        ("parts", 101, second), ("temp", -0.25, second), ("order", "WO/0002", second)]
    assert type(batch[0].value) is int and type(batch[1].value) is float
    assert all(s.device == "press2" and s.quality is Quality.GOOD and s.error is None
               for s in batch)
    assert not (tmp_path / "press-0800.csv").exists()
    [record] = [json.loads(v) for v in state.data.values()]
    assert record["name"] == "press-0800.csv" and record["rows"] == 2
    assert record["size"] == len(csv_text.encode()) and len(record["sha256"]) == 64
    assert driver.counts == {"processed": 1, "quarantined": 0, "duplicates": 0}
    assert driver.health.reads == 2 and driver.health.errors == 0


def test_file_recorded_but_not_moved_is_moved_without_a_second_batch(tmp_path, caplog):
    state = DictState()
    write(tmp_path / "a.csv", GOOD_CSV)

    async def first_run():
        pull = Puller(make_driver(tmp_path, state))
        await wait_until(lambda: (tmp_path / "processed" / "a.csv").exists(), what="a taken")
        await pull.close()
        return pull.batches

    assert len(asyncio.run(first_run())) == 1
    # the gateway died after recording a.csv and before moving it: it is back in the folder
    shutil.copy2(tmp_path / "processed" / "a.csv", tmp_path / "a.csv")
    write(tmp_path / "b.csv", GOOD_CSV.replace("WO-1", "WO-2"))

    async def second_run():
        driver = make_driver(tmp_path, state)
        pull = Puller(driver)
        await wait_until(lambda: not (tmp_path / "a.csv").exists()
                         and not (tmp_path / "b.csv").exists(), what="both moved")
        await pull.wait_scans(2)
        await pull.close()
        return pull.batches, driver

    with caplog.at_level(logging.INFO, logger=LOGGER):
        batches, driver = asyncio.run(second_run())
    assert len(batches) == 1 and {s.value for s in batches[0] if s.tag == "order"} == {"WO-2"}
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == [
        "a.1.csv", "a.csv", "b.csv"]  # nothing overwritten
    [line] = events(caplog, "file_already_taken")
    assert "device=press2 file=a.csv" in line
    assert driver.counts == {"processed": 1, "quarantined": 0, "duplicates": 1}


def test_batch_the_gateway_did_not_take_is_offered_again_after_restart(tmp_path):
    state = DictState()
    write(tmp_path / "a.csv", GOOD_CSV)

    async def crash_before_store():
        samples = make_driver(tmp_path, state).samples()
        batch = await asyncio.wait_for(samples.__anext__(), 8)
        await samples.aclose()  # the gateway never pulled again: the batch was not stored
        return batch

    async def restart():
        pull = Puller(make_driver(tmp_path, state))
        await wait_until(lambda: (tmp_path / "processed" / "a.csv").exists(), what="a taken")
        await pull.close()
        return pull.batches

    lost = asyncio.run(crash_before_store())
    assert (tmp_path / "a.csv").exists() and state.data == {}
    [again] = asyncio.run(restart())
    assert again == lost
    assert len(state.data) == 1


def test_a_reused_file_name_with_new_content_is_taken_again(tmp_path):
    state = DictState()

    async def run_once(text):
        write(tmp_path / "export.csv", text)
        pull = Puller(make_driver(tmp_path, state))
        await wait_until(lambda: not (tmp_path / "export.csv").exists(), what="the move")
        await pull.close()
        return pull.batches

    first = asyncio.run(run_once(GOOD_CSV))
    second = asyncio.run(run_once(GOOD_CSV.replace("08:0", "09:0")))
    assert len(first) == 1 and len(second) == 1
    assert first[0][0].source_ts + 3600 == second[0][0].source_ts
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == [
        "export.1.csv", "export.csv"]


BAD_FILES = {
    "wrong_type.csv": (GOOD_CSV + "2024-03-05T08:02:00,1O2,21.5,WO-1,ann\n",
                       ["row: 4", "column: parts", "value: '1O2'",
                        "reason: not an integer (tag 'parts')"]),
    "bad_time.csv": (GOOD_CSV.replace("2024-03-05T08:01:00", "05/03/2024 8am"),
                     ["row: 3", "column: time", "value: '05/03/2024 8am'",
                      "not an ISO 8601 timestamp"]),
    "short_row.csv": (GOOD_CSV + "2024-03-05T08:03:00,103,21.5\n",
                      ["row: 4", "reason: expected 5 fields like the header, got 3"]),
    "no_column.csv": (GOOD_CSV.replace("temp", "temperature"),
                      ["row: 1", "column: temp",
                       "the header has no column 'temp' (mapped to tag 'temp')"]),
    "empty.csv": ("", ["reason: empty file"]),
    "latin1.csv": (None, ["row: 2", "not valid utf-8 (byte 0xe9"]),
}


def test_bad_files_go_to_quarantine_whole_with_the_row_column_and_value(tmp_path, caplog):
    for name, (text, _) in BAD_FILES.items():
        if text is None:
            (tmp_path / name).write_bytes(GOOD_CSV.replace("ann", "Ren\xe9e").encode("latin-1"))
        else:
            write(tmp_path / name, text)
    write(tmp_path / "good.csv", GOOD_CSV)
    driver = make_driver(tmp_path)

    async def scenario():
        pull = Puller(driver)
        await wait_until(lambda: driver.counts["quarantined"] == len(BAD_FILES)
                         and driver.counts["processed"] == 1, what="every file judged")
        await pull.wait_scans(2)
        await pull.close()
        return pull.batches

    with caplog.at_level(logging.INFO, logger=LOGGER):
        batches = asyncio.run(scenario())
    assert len(batches) == 1 and len(batches[0]) == 6  # only good.csv: 2 rows x 3 tags
    quarantine = tmp_path / "quarantine"
    for name, (_, expected) in BAD_FILES.items():
        assert (quarantine / name).exists(), name
        reason = (quarantine / f"{name}.reason.txt").read_text()
        assert f"file: {name}" in reason
        for part in expected:
            assert part in reason, (name, part, reason)
    assert sorted(os.listdir(tmp_path)) == ["processed", "quarantine"]
    lines = events(caplog, "file_quarantined")
    assert len(lines) == len(BAD_FILES)  # one line per file
    [wrong] = [x for x in lines if "file=wrong_type.csv" in x]
    assert wrong == ('event=file_quarantined device=press2 file=wrong_type.csv row=4 '
                     'column=parts value=\'1O2\' reason="not an integer (tag \'parts\')" '
                     'moved_to=quarantine/wrong_type.csv')
    assert driver.health.errors == len(BAD_FILES)


def test_half_written_file_is_waited_for_and_taken_once_complete(tmp_path):
    driver = make_driver(tmp_path, stable_seconds=2.0)
    path = tmp_path / "slow.csv"
    half = len(GOOD_CSV) // 2 + 7  # in the middle of the first data row

    async def scenario():
        pull = Puller(driver)
        with open(path, "wb") as fh:
            fh.write(GOOD_CSV[:half].encode())
            fh.flush()
            began = time.monotonic()
            await wait_until(lambda: driver.watcher.looks.get("slow.csv", 0) >= 3,
                             what="the driver looking at the half file")
            assert time.monotonic() - began < 2.0, "the machine is too slow for this test"
            assert pull.batches == [] and path.exists()
            fh.write(GOOD_CSV[half:].encode())
        await wait_until(lambda: pull.batches, what="the whole file's batch")
        await wait_until(lambda: not path.exists(), what="the move")
        await pull.wait_scans(3)
        await pull.close()
        return pull.batches

    [batch] = asyncio.run(scenario())
    assert [s.value for s in batch if s.tag == "parts"] == [100, 101]
    assert (tmp_path / "processed" / "slow.csv").read_text() == GOOD_CSV


def test_file_renamed_in_is_taken_and_temporary_names_are_not(tmp_path):
    driver = make_driver(tmp_path, stable_seconds=5.0)
    part = tmp_path / "export.csv.part"

    async def scenario():
        pull = Puller(driver)
        write(part, GOOD_CSV)
        write(tmp_path / "other.tmp", GOOD_CSV)
        old = time.time() - 60
        os.utime(part, (old, old))  # written a minute ago, renamed in just now
        await pull.wait_scans(3)
        assert pull.batches == [] and driver.watcher.looks == {}
        os.rename(part, tmp_path / "export.csv")
        # finished a minute ago: taken at the second look, without waiting stable_seconds
        await wait_until(lambda: pull.batches, 3.0, "the renamed file's batch")
        await wait_until(lambda: not (tmp_path / "export.csv").exists(), what="the move")
        await pull.wait_scans(2)
        await pull.close()
        return pull.batches

    batches = asyncio.run(scenario())
    assert len(batches) == 1
    assert sorted(os.listdir(tmp_path)) == ["other.tmp", "processed"]


def test_missing_folder_is_logged_once_and_watched_until_it_appears(tmp_path, caplog):
    folder = tmp_path / "share"
    driver = make_driver(folder, stable_seconds=0)

    async def scenario():
        pull = Puller(driver)
        await wait_until(lambda: driver.health.errors >= 3, what="failed scans")
        assert driver.health.connected is False
        folder.mkdir()
        write(folder / "a.csv", GOOD_CSV)
        await wait_until(lambda: pull.batches, what="the batch")
        await pull.close()
        return pull.batches

    with caplog.at_level(logging.INFO, logger=LOGGER):
        batches = asyncio.run(scenario())
    assert len(batches) == 1 and driver.health.connected is True
    [line] = events(caplog, "folder_unavailable")
    assert f"directory={folder}" in line and "FileNotFoundError" in line
    assert len(events(caplog, "folder_available")) == 1


def test_header_only_file_is_taken_without_a_batch(tmp_path, caplog):
    write(tmp_path / "weekend.csv", "time,parts,temp,order\n")
    driver = make_driver(tmp_path, stable_seconds=0)

    async def scenario():
        pull = Puller(driver)
        await wait_until(lambda: (tmp_path / "processed" / "weekend.csv").exists(),
                         what="the move")
        await pull.close()
        return pull.batches

    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert asyncio.run(scenario()) == []
    assert len(events(caplog, "file_has_no_rows")) == 1
    assert driver.counts["processed"] == 1


def test_stop_ends_the_stream_promptly(tmp_path):
    driver = make_driver(tmp_path, poll_interval=30)

    async def scenario():
        pull = Puller(driver)
        await pull.wait_scans(1)
        began = time.monotonic()
        await pull.close()
        await driver.stop()
        return time.monotonic() - began

    assert asyncio.run(scenario()) < 0.5
