"""The patient-id rule: which ids can name files, applied by validate and by every later stage."""

from __future__ import annotations

import unicodedata

MAX_ID_BYTES = 200  # leaves room for an extension within the usual 255-byte file-name limit


# --------------------------------------------------------------------------------------------- patient ids
def patient_id_problem(patient_id: str) -> str | None:
    """Why an id cannot name files (empty, path-like, control characters), or None if it is safe."""
    if patient_id == "":
        return "patient_id is empty"
    if "/" in patient_id or "\\" in patient_id:
        return "patient_id contains a path separator ('/' or '\\')"
    if ".." in patient_id:
        return "patient_id contains '..'"
    if patient_id.startswith("."):
        return "patient_id starts with '.' (a hidden file name)"
    if any(unicodedata.category(ch) == "Cc" for ch in patient_id):
        return "patient_id contains control characters"
    if len(patient_id.encode("utf-8")) > MAX_ID_BYTES:
        return f"patient_id is longer than {MAX_ID_BYTES} bytes"
    return None
