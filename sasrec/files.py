"""Atomic file replacement, shared by everything that writes files others read while they change."""

import os
import tempfile
from pathlib import Path


def atomic_write(path, write) -> None:
    """Call write(temp_path) next to path, then rename it over path, so a reader never
    sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
