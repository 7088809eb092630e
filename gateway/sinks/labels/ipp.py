"""The small part of IPP/1.1 (RFC 8010, 8011) a label printer needs: Print-Job, Get-Jobs, Get-Job-Attributes.

It owns encoding those two requests (operation attributes, then the document)
and decoding the answer's status and attribute groups, and sending them as an
HTTP POST of `application/ipp` to the printer's resource with a timeout on
the connection and the answer. CUPS and IPP Everywhere printers speak it. It
knows nothing of labels: `printer.py` calls `print_job` and `job_names`.
"""
from __future__ import annotations

import http.client
import ssl
import struct
from dataclasses import dataclass, field
from typing import Any

PRINT_JOB, GET_JOB_ATTRIBUTES, GET_JOBS = 0x0002, 0x0009, 0x000A
#: the newest jobs `job_names` looks at (a label in doubt is among the printer's last few jobs)
RECENT_JOBS = 20
_OPERATION, _JOB, _END = 0x01, 0x02, 0x03
_INTEGER, _BOOLEAN, _ENUM = 0x21, 0x22, 0x23
_NAME, _KEYWORD, _URI, _CHARSET, _LANGUAGE, _MIME = 0x42, 0x44, 0x45, 0x47, 0x48, 0x49
#: the job states of RFC 8011 5.3.7 that mean the printer has the job (pending .. completed)
JOB_STATES = {3: "pending", 4: "pending-held", 5: "processing", 6: "processing-stopped", 7: "canceled",
              8: "aborted", 9: "completed"}


class Unreachable(OSError):
    """No connection to the printer: the request was not sent."""


class IppError(Exception):
    """The printer answered with an IPP error status, or not in IPP at all."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Response:
    status: int
    request_id: int
    groups: list[tuple[int, dict[str, list[Any]]]] = field(default_factory=list)

    def group(self, tag: int) -> list[dict[str, list[Any]]]:
        return [attrs for t, attrs in self.groups if t == tag]


def _attr(tag: int, name: str, *values: bytes | str) -> bytes:
    out = b""
    for i, v in enumerate(values):
        raw = v.encode("utf-8") if isinstance(v, str) else v
        key = name.encode() if i == 0 else b""
        out += struct.pack(">BH", tag, len(key)) + key + struct.pack(">H", len(raw)) + raw
    return out


def encode(operation: int, request_id: int, uri: str, user: str, attrs: bytes = b"", document: bytes = b"") -> bytes:
    """An IPP/1.1 request: header, operation attributes (charset, language, printer-uri, user, `attrs`)."""
    return (struct.pack(">BBHI", 1, 1, operation, request_id) + bytes([_OPERATION])
            + _attr(_CHARSET, "attributes-charset", "utf-8") + _attr(_LANGUAGE, "attributes-natural-language", "en")
            + _attr(_URI, "printer-uri", uri) + _attr(_NAME, "requesting-user-name", user) + attrs
            + bytes([_END]) + document)


def decode(body: bytes) -> Response:
    """An IPP answer's status, request id and attribute groups (integers and enums as int, text as str)."""
    if len(body) < 9:
        raise IppError(f"not an IPP answer ({len(body)} bytes)")
    _major, _minor, status, request_id = struct.unpack(">BBHI", body[:8])
    resp = Response(status, request_id)
    i, current, last = 8, None, ""
    while i < len(body):
        tag = body[i]
        i += 1
        if tag == _END:
            break
        if tag < 0x10:
            current = {}
            resp.groups.append((tag, current))
            continue
        if i + 2 > len(body) or current is None:
            raise IppError("truncated IPP answer")
        (nlen,) = struct.unpack(">H", body[i:i + 2])
        name = body[i + 2:i + 2 + nlen].decode("utf-8", "replace")
        i += 2 + nlen
        if i + 2 > len(body):
            raise IppError("truncated IPP answer")
        (vlen,) = struct.unpack(">H", body[i:i + 2])
        raw = body[i + 2:i + 2 + vlen]
        if len(raw) < vlen:
            raise IppError("truncated IPP answer")
        i += 2 + vlen
        value: Any = (struct.unpack(">i", raw)[0] if tag in (_INTEGER, _ENUM) and vlen == 4
                      else bool(raw[0]) if tag == _BOOLEAN and vlen == 1
                      else raw.decode("utf-8", "replace") if 0x40 <= tag <= 0x4F else raw)
        if nlen:
            last = name
            current.setdefault(name, []).append(value)
        elif last:
            current.setdefault(last, []).append(value)
    return resp


def post(host: str, port: int, path: str, body: bytes, timeout: float, tls: bool = False) -> bytes:
    """POST `body` as application/ipp to http(s)://host:port/path; the answer's body. Blocking."""
    conn: http.client.HTTPConnection
    if tls:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            conn.connect()
        except OSError as exc:
            raise Unreachable(str(exc) or type(exc).__name__) from exc
        conn.request("POST", path, body=body, headers={"Content-Type": "application/ipp"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise IppError(f"HTTP {resp.status} {resp.reason} from {host}:{port}{path}")
        return data
    finally:
        conn.close()


def print_job(host: str, port: int, path: str, uri: str, job_name: str, document: bytes, fmt: str,
              timeout: float, tls: bool = False, user: str = "linebridge") -> int:
    """Print-Job: the printer's job id for `document`; IppError when it refuses."""
    attrs = _attr(_NAME, "job-name", job_name) + _attr(_MIME, "document-format", fmt)
    resp = decode(post(host, port, path, encode(PRINT_JOB, 1, uri, user, attrs, document), timeout, tls))
    if resp.status >= 0x0100:
        raise IppError(f"Print-Job refused: status 0x{resp.status:04x}{_message(resp)}", resp.status)
    ids = [a.get("job-id", [None])[0] for a in resp.group(_JOB)]
    return int(ids[0]) if ids and ids[0] is not None else 0


def job_names(host: str, port: int, path: str, uri: str, timeout: float, tls: bool = False,
              user: str = "linebridge", recent: int = RECENT_JOBS) -> dict[str, tuple[int, str]]:
    """Job name -> (job id, state) of the printer's `recent` newest jobs, finished ones included.

    Get-Jobs (which-jobs = all) lists the ids; Get-Job-Attributes reads each
    one's name (CUPS leaves a finished job's name out of Get-Jobs once it has
    unloaded the job from memory, but Get-Job-Attributes loads it).
    """
    attrs = (_attr(_KEYWORD, "which-jobs", "all")
             + _attr(_KEYWORD, "requested-attributes", "job-id", "job-state"))
    resp = decode(post(host, port, path, encode(GET_JOBS, 2, uri, user, attrs), timeout, tls))
    if resp.status >= 0x0100:
        raise IppError(f"Get-Jobs refused: status 0x{resp.status:04x}{_message(resp)}", resp.status)
    ids = sorted({int(job.get("job-id", [0])[0]) for job in resp.group(_JOB)} - {0})[-recent:]
    out: dict[str, tuple[int, str]] = {}
    for jid in ids:
        attrs = (_attr(_INTEGER, "job-id", struct.pack(">i", jid))
                 + _attr(_KEYWORD, "requested-attributes", "job-id", "job-name", "job-state"))
        one = decode(post(host, port, path, encode(GET_JOB_ATTRIBUTES, 3, uri, user, attrs), timeout, tls))
        if one.status >= 0x0100:
            continue   # the job went between the two requests
        for job in one.group(_JOB):
            name, state = job.get("job-name", [""])[0], job.get("job-state", [0])[0]
            out[str(name)] = (jid, JOB_STATES.get(int(state), str(state)))
    return out


def _message(resp: Response) -> str:
    msgs = [a.get("status-message", [""])[0] for a in resp.group(_OPERATION)]
    return f" ({msgs[0]})" if msgs and msgs[0] else ""
