"""Face detection, 68 landmarks, FFHQ alignment, masks and QC of a cohort's photos."""

__all__ = ["align", "detect", "folder", "mask", "qc"]
