"""The one patient-id rule: `validate` applies it to clinical.csv (naming the row), and every later stage
relies on it, since an id names the patient's files (``<patient_id>.png``) in every stage folder.

An id is letters, digits, '.', '_' and '-' (ASCII), starting with a letter or digit, at most 200 bytes:
no spaces, accents, path separators, hidden names, control or invisible characters (a zero-width space or
a right-to-left override would make two ids look alike), on every file system.
"""

from __future__ import annotations

import re
import unicodedata

MAX_ID_BYTES = 200  # leaves room for an extension within the usual 255-byte file-name limit
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ID_FIX = "use letters, digits, '.', '_' or '-' only (ASCII), starting with a letter or digit"


def patient_id_problem(patient_id: str) -> str | None:
    """Why ``patient_id`` cannot be a patient id (and name files), or None when it can."""
    patient_id = str(patient_id)  # a numpy string would show as np.str_('...')
    if patient_id == "":
        return "patient_id is empty"
    if len(patient_id.encode("utf-8")) > MAX_ID_BYTES:
        return f"patient_id is longer than {MAX_ID_BYTES} bytes"
    if "/" in patient_id or "\\" in patient_id:
        return f"patient_id {patient_id!r} contains a path separator"
    if ".." in patient_id:
        return f"patient_id {patient_id!r} contains '..'"
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in patient_id):
        return f"patient_id {patient_id!r} contains control or invisible characters"
    if SAFE_ID.fullmatch(patient_id) is None:
        return f"patient_id {patient_id!r} is not a safe file name ({ID_FIX})"
    return None
