"""The patient-id rules: which ids validate accepts, and which ids the later stages let name their files."""

from __future__ import annotations

import re
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


# ------------------------------------------------------------------------------------------- file names
SAFE_FILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def file_id_problem(patient_id: str) -> str | None:
    """Why an id may not name a file in a stage's folder (``<patient_id>.png``), or None if it may.

    The stages that read aligned photos (embed, GAN training, the CNN baseline) accept only ids of letters,
    digits, '.', '_' and '-' that start with a letter or digit.
    """
    patient_id = str(patient_id)  # a numpy string would show as np.str_('...')
    if SAFE_FILE_ID.match(patient_id) is None:
        return (
            f"patient id {patient_id!r} is not a safe file name; use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return None
