"""A label as ZPL II, the language of Zebra-compatible printers.

It owns the translation of a template and its filled values into one
`^XA ... ^XZ` format: positions in dots at the printer's resolution, UTF-8
field data (`^CI28`), every field's data hex-escaped where it holds a ZPL
control character (`^FH`), and the barcodes: Code 128 (`^BC`), GS1-128
(`^BC` in UCC/EAN mode D: the printer encodes FNC1 and strips the
parentheses of the application identifiers), DataMatrix (`^BX`, ECC 200) and
QR (`^BQ`, model 2, error correction M). It does not send anything.
"""
from __future__ import annotations

from gateway.sinks.labels.config import TemplateSpec
from gateway.sinks.labels.template import fill


def dots(mm: float, dpi: int) -> int:
    return max(1, round(mm * dpi / 25.4))


def field_data(text: str) -> str:
    """`^FD` data: with `^FH\\` and `\\hh` escapes when it holds `^`, `~` or `\\`; else as it is."""
    if not any(ch in text for ch in "^~\\"):
        return f"^FD{text}^FS"
    escaped = "".join(f"\\{ord(ch):02X}" if ch in "^~\\" else ch for ch in text)
    return f"^FH\\^FD{escaped}^FS"


def render(template: TemplateSpec, values: dict[str, str], dpi: int = 203) -> bytes:
    """The ZPL of one label (raises `MissingValue` for a placeholder the values lack)."""
    out = ["^XA", "^CI28", f"^PW{dots(template.width_mm, dpi)}", f"^LL{dots(template.height_mm, dpi)}", "^LH0,0"]
    for f in template.fields:
        data = fill(f.data, values)
        out.append(f"^FO{dots(f.x_mm, dpi)},{dots(f.y_mm, dpi)}")
        if f.type == "text":
            h = dots(f.size_mm, dpi)
            out.append(f"^A0N,{h},{h}")
            out.append(field_data(data))
        elif f.type in ("code128", "gs1_128"):
            out.append(f"^BY2^BCN,{dots(f.size_mm, dpi)},Y,N,N,{'D' if f.type == 'gs1_128' else 'N'}")
            out.append(field_data(data))
        elif f.type == "datamatrix":
            out.append(f"^BXN,{dots(f.size_mm, dpi)},200")
            out.append(field_data(data))
        elif f.type == "qr":
            out.append(f"^BQN,2,{min(10, dots(f.size_mm, dpi))}")
            out.append(field_data(f"MA,{data}"))
    out.append("^XZ")
    return ("\n".join(out) + "\n").encode("utf-8")
