"""Tags from a CSV file, as a technician exports them from a PLC project or a spreadsheet.

It owns reading the CSV into a device's `tags` table and saying what is wrong by row and column. The
first row names the columns: `name` (required) and any of the tag's keys as the driver's README lists
them (`function`, `address`, `type`, `scale`, ... for Modbus; `node`, `type` for OPC-UA). Cells are typed
by the key where the key's type is known (Modbus: integers, numbers, true/false), otherwise a number
becomes a number, `true`/`false` a boolean and anything else text; an empty cell leaves the key out.
The table is then validated as the gateway loads it (`webui.configfile`), and each problem's key path
is turned back into its row and column (`row 4 (tag oven_temp), column address: ...`).
"""
from __future__ import annotations

import csv
import io
import re
from typing import Any

from gateway.config import name_problem

MAX_ROWS = 5000
MAX_BYTES = 1 * 2**20
#: known cell types by key, for every driver that has them
INTS = {"address", "bit", "length", "count", "register", "slave", "namespace", "column", "row"}
FLOATS = {"scale", "offset", "deadband", "min", "max"}
BOOLS = {"writable", "signed", "enabled"}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class CsvRejected(ValueError):
    """The CSV cannot become tags; `problems` names each row and column."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _cell(key: str, raw: str, where: str, problems: list[str]) -> Any:
    text = raw.strip()
    low = text.lower()
    if key in INTS:
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        if re.fullmatch(r"0x[0-9a-fA-F]+", text):
            return int(text, 16)
        problems.append(f"{where}: {text[:40]!r} is not a whole number")
        return None
    if key in FLOATS:
        if _NUMBER.match(text):
            return float(text)
        problems.append(f"{where}: {text[:40]!r} is not a number")
        return None
    if key in BOOLS:
        if low in ("true", "yes", "1"):
            return True
        if low in ("false", "no", "0"):
            return False
        problems.append(f"{where}: {text[:40]!r} is not true or false")
        return None
    if low in ("true", "false"):
        return low == "true"
    if _NUMBER.match(text):
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    return text


def parse(text: str) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """The tags of a CSV text, and the row each tag came from (1 = the header)."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise CsvRejected([f"file: larger than {MAX_BYTES // 2**20} MiB"])
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), dialect))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise CsvRejected(["file: empty; the first row names the columns (name, address, type, ...)"])
    header = [h.strip().lower() for h in rows[0]]
    problems: list[str] = []
    if "name" not in header:
        raise CsvRejected([f"row 1: no 'name' column (columns: {', '.join(header) or 'none'})"])
    for i, h in enumerate(header):
        why = name_problem(h) if h else "is empty"
        if why:
            problems.append(f"row 1, column {i + 1}: a column name {why}")
        elif header.index(h) != i:
            problems.append(f"row 1, column {h}: named twice")
    if len(rows) - 1 > MAX_ROWS:
        problems.append(f"file: more than {MAX_ROWS} tags")
    if problems:
        raise CsvRejected(problems)
    tags: dict[str, dict[str, Any]] = {}
    where_of: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if len(row) > len(header):
            problems.append(f"row {n}: {len(row)} cells for {len(header)} columns")
            continue
        cells = dict(zip(header, row))
        name = cells.pop("name", "").strip()
        why = name_problem(name)
        if why:
            problems.append(f"row {n}, column name: {name[:40]!r} {why}")
            continue
        if name in tags:
            problems.append(f"row {n}, column name: tag {name} is also in row {where_of[name]}")
            continue
        tag = {}
        for key, raw in cells.items():
            if raw.strip():
                value = _cell(key, raw, f"row {n} (tag {name}), column {key}", problems)
                if value is not None:
                    tag[key] = value
        tags[name] = tag
        where_of[name] = n
    if problems:
        raise CsvRejected(problems)
    return tags, where_of


def locate(problems: list[str], device: str, rows: dict[str, int]) -> list[str]:
    """Configuration problems (`devices.<d>.tags.<t>.<key>: ...`) said by row and column."""
    prefix = re.compile(rf"^(?:[^:\s]+\.toml: )?devices\.{re.escape(device)}\.tags\.([A-Za-z0-9_-]+)(?:\.(\w+))?: ")
    out = []
    for p in problems:
        m = prefix.match(p)
        if m and m[1] in rows:
            col = f", column {m[2]}" if m[2] else ""
            out.append(f"row {rows[m[1]]} (tag {m[1]}){col}: {p[m.end():]}")
        else:
            out.append(p)
    return out
