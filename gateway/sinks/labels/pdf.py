"""A label as a one-page PDF, for CUPS/IPP printers.

It owns drawing a template with its filled values on a page of the label's
size: text in Helvetica, barcodes as vector rectangles from the module matrix
zxing-cpp encodes (Code 128; GS1-128 with its FNC1; DataMatrix ECC 200; QR),
so they stay sharp at any printer resolution. It needs the `labels` extra
(fpdf2, zxing-cpp), imported on first use. It does not send anything.
"""
from __future__ import annotations

from typing import Any

from gateway.sinks.labels.config import FieldSpec, TemplateSpec
from gateway.sinks.labels.template import fill

#: the narrowest Code 128 module drawn (mm); a code that does not fit its label at this width is narrowed
MODULE_MM = 0.33


def render(template: TemplateSpec, values: dict[str, str]) -> bytes:
    """The PDF of one label (raises `MissingValue` for a placeholder the values lack)."""
    from fpdf import FPDF
    pdf = FPDF(unit="mm", format=(template.width_mm, template.height_mm))
    pdf.set_margins(0, 0, 0)
    pdf.set_auto_page_break(False)
    pdf.set_creator("linebridge")
    pdf.add_page()
    pdf.set_fill_color(0, 0, 0)
    for f in template.fields:
        data = fill(f.data, values)
        if f.type == "text":
            size_pt = f.size_mm / 0.3528 / 0.72   # cap height ~72% of the font size
            pdf.set_font("helvetica", size=size_pt)
            pdf.text(f.x_mm, f.y_mm + f.size_mm, data.encode("latin-1", "replace").decode("latin-1"))
        else:
            _barcode(pdf, f, data, template.width_mm)
    return bytes(pdf.output())


def _barcode(pdf: Any, f: FieldSpec, data: str, width_mm: float) -> None:
    import zxingcpp
    if f.type in ("code128", "gs1_128"):
        code = zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.Code128, gs1=f.type == "gs1_128")
        image = code.to_image(scale=1, add_quiet_zones=False)
        h, w = image.shape[0], image.shape[1]
        row = bytes(memoryview(image))[(h // 2) * w:(h // 2 + 1) * w]
        module = min(MODULE_MM, max(0.1, (width_mm - f.x_mm - 1) / max(1, w)))
        for start, run in _runs(row):
            pdf.rect(f.x_mm + start * module, f.y_mm, run * module, f.size_mm, style="F")
        return
    fmt = zxingcpp.BarcodeFormat.DataMatrix if f.type == "datamatrix" else zxingcpp.BarcodeFormat.QRCode
    code = zxingcpp.create_barcode(data, fmt, **({"ec_level": "M"} if f.type == "qr" else {}))
    image = code.to_image(scale=1, add_quiet_zones=False)
    h, w = image.shape[0], image.shape[1]
    pixels = bytes(memoryview(image))
    for y in range(h):
        for start, run in _runs(pixels[y * w:(y + 1) * w]):
            pdf.rect(f.x_mm + start * f.size_mm, f.y_mm + y * f.size_mm, run * f.size_mm, f.size_mm, style="F")


def _runs(row: bytes) -> list[tuple[int, int]]:
    """(start, length) of each run of dark pixels in one row."""
    out: list[tuple[int, int]] = []
    start = None
    for i, v in enumerate(row):
        if v < 128 and start is None:
            start = i
        elif v >= 128 and start is not None:
            out.append((start, i - start))
            start = None
    if start is not None:
        out.append((start, len(row) - start))
    return out
