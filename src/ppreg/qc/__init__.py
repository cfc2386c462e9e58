"""QC pictures of a registration, drawn with numpy and written as PNG by SimpleITK."""

from ppreg.qc.picture import QcPicture, qc_picture, qc_report_entry, write_png

__all__ = ["QcPicture", "qc_picture", "qc_report_entry", "write_png"]
