"""Label printers: ZPL over raw TCP (port 9100) and PDF over IPP, each send with a timeout.

It owns the two ways a label reaches paper, behind one small interface:
`render(template, values)` (the bytes that printer takes) and `send(label_id,
document)`, which raises `TransientDeliveryError` when the printer is off,
unreachable, too slow or refusing (the sink holds the label and tries again);
`MaybeSent`, one of those, when an IPP request went out and no answer came
(the sink asks the printer before it sends again).
With `status_check`, a ZPL printer is asked for its host status (`~HS`)
first: paper out, paused, head open or ribbon out hold the label like an
outage. `printed(label_id)` says whether the printer already has a label from an
earlier life of the process: IPP printers keep their jobs (by job name, our
label id), so it answers True or False; a raw TCP printer keeps nothing the
host can ask for, so it answers None (not known). It does not decide what to
print or in which order (see `sink.py`).
"""
from __future__ import annotations

import asyncio
import logging

from gateway.errors import TransientDeliveryError
from gateway.sinks.labels import ipp
from gateway.sinks.labels.config import LabelSinkConfig, TemplateSpec

log = logging.getLogger("linebridge.sinks.labels")


class MaybeSent(TransientDeliveryError):
    """The send failed after the label went out: the printer may have it (ask it before sending again)."""


class RawPrinter:
    """A Zebra-compatible printer: one TCP connection per label, ZPL in, nothing back."""

    language = "zpl"

    def __init__(self, cfg: LabelSinkConfig) -> None:
        self.cfg = cfg

    def render(self, template: TemplateSpec, values: dict[str, str]) -> bytes:
        from gateway.sinks.labels import zpl
        return zpl.render(template, values, self.cfg.dpi)

    async def send(self, label_id: str, document: bytes) -> str:
        timeout = self.cfg.timeout
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.cfg.host, self.cfg.port), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise TransientDeliveryError(f"printer {self.cfg.url} unreachable: {_reason(exc)}") from exc
        try:
            if self.cfg.status_check:
                await self._ready(reader, writer)
            writer.write(document)
            await asyncio.wait_for(writer.drain(), timeout)
            if writer.can_write_eof():
                writer.write_eof()
            await asyncio.wait_for(writer.drain(), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise TransientDeliveryError(f"printer {self.cfg.url} send failed: {_reason(exc)}") from exc
        finally:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), timeout)
            except (OSError, asyncio.TimeoutError):
                pass
        return f"zpl:{len(document)}B"

    async def _ready(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Ask the printer's host status (`~HS`); TransientDeliveryError when it cannot print now."""
        writer.write(b"~HS\r\n")
        await asyncio.wait_for(writer.drain(), self.cfg.timeout)
        answer = b""
        try:
            while answer.count(b"\x03") < 3:
                chunk = await asyncio.wait_for(reader.read(1024), self.cfg.timeout)
                if not chunk:
                    break
                answer += chunk
        except asyncio.TimeoutError:
            pass
        problem = host_status_problem(answer)
        if problem:
            raise TransientDeliveryError(f"printer {self.cfg.url}: {problem}")

    async def printed(self, label_id: str) -> bool | None:
        return None

    async def probe(self) -> str | None:
        """A connection test: None when the printer takes a connection (and, with status_check, can
        print now), else why not. Sends no label."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.cfg.host, self.cfg.port), self.cfg.timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            return f"unreachable: {_reason(exc)}"
        try:
            if self.cfg.status_check:
                await self._ready(reader, writer)
        except TransientDeliveryError as exc:
            return str(exc)
        except (OSError, asyncio.TimeoutError) as exc:
            return _reason(exc)
        finally:
            writer.close()
        return None


def host_status_problem(answer: bytes) -> str | None:
    """Why a Zebra's `~HS` answer says it cannot print now (paper out, paused, head open, ribbon out),
    or None when it can. An answer that is not one is a problem too: status_check needs a printer that answers."""
    strings = [part.split(b"\x03")[0].decode("ascii", "replace").split(",")
               for part in answer.split(b"\x02")[1:]]
    if len(strings) < 2 or len(strings[0]) < 3 or len(strings[1]) < 4:
        return f"no host status answer to ~HS ({len(answer)} bytes)"
    one, two = strings[0], strings[1]
    problems = [what for flag, what in ((one[1], "paper out"), (one[2], "paused"), (two[2], "head open"),
                                        (two[3], "ribbon out")) if flag.strip() == "1"]
    return ", ".join(problems) or None


class IppPrinter:
    """A CUPS or IPP Everywhere printer: a PDF per label, a Print-Job named by the label id."""

    language = "pdf"

    def __init__(self, cfg: LabelSinkConfig) -> None:
        self.cfg = cfg
        scheme = "ipps" if cfg.protocol == "ipps" else "ipp"
        self.uri = f"{scheme}://{cfg.host}:{cfg.port}{cfg.path}"

    def render(self, template: TemplateSpec, values: dict[str, str]) -> bytes:
        from gateway.sinks.labels import pdf
        return pdf.render(template, values)

    async def send(self, label_id: str, document: bytes) -> str:
        c = self.cfg
        try:
            job = await asyncio.wait_for(asyncio.to_thread(
                ipp.print_job, c.host, c.port, c.path, self.uri, label_id, document, "application/pdf",
                c.timeout, c.protocol == "ipps"), c.timeout * 2)
        except ipp.IppError as exc:
            # the printer answered and refused: the job is not there. The sink holds the label either way
            # (every label of a wrongly set printer would fail alike); the message says which it is
            raise TransientDeliveryError(f"printer {c.url}: {exc}") from exc
        except ipp.Unreachable as exc:
            raise TransientDeliveryError(f"printer {c.url} unreachable: {_reason(exc)}") from exc
        except (OSError, asyncio.TimeoutError, http_errors()) as exc:
            # the request went out and no answer came: the printer may have the job
            raise MaybeSent(f"printer {c.url}: no answer to Print-Job: {_reason(exc)}") from exc
        return f"ipp-job:{job}"

    async def printed(self, label_id: str) -> bool | None:
        c = self.cfg
        try:
            jobs = await asyncio.wait_for(asyncio.to_thread(
                ipp.job_names, c.host, c.port, c.path, self.uri, c.timeout, c.protocol == "ipps"), c.timeout * 2)
        except (ipp.IppError, OSError, asyncio.TimeoutError, http_errors()) as exc:
            raise TransientDeliveryError(f"printer {c.url}: cannot list its jobs: {_reason(exc)}") from exc
        found = jobs.get(label_id)
        return found is not None and found[1] not in ("canceled", "aborted")

    async def probe(self) -> str | None:
        """A connection test: None when the printer answers Get-Jobs on its resource, else why not."""
        c = self.cfg
        try:
            await asyncio.wait_for(asyncio.to_thread(
                ipp.job_names, c.host, c.port, c.path, self.uri, c.timeout, c.protocol == "ipps", "linebridge", 1),
                c.timeout * 2)
        except (ipp.IppError, OSError, asyncio.TimeoutError, http_errors()) as exc:
            return _reason(exc)
        return None


def http_errors() -> type[Exception]:
    import http.client
    return http.client.HTTPException


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def printer_for(cfg: LabelSinkConfig) -> RawPrinter | IppPrinter:
    return RawPrinter(cfg) if cfg.protocol == "zpl" else IppPrinter(cfg)
