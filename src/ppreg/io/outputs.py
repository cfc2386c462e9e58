"""All-or-nothing output sets: every file is written to a temp name, renamed at the end."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputSet:
    """Collects outputs; :meth:`commit` renames them all, :meth:`discard` removes them.

    Used as a context manager, an exception discards everything, so a failed run
    leaves no partial outputs behind.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def temp_path(self, final: str | os.PathLike) -> Path:
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        suffix = ".nii.gz" if final.name.endswith(".nii.gz") else final.suffix
        handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
        os.close(handle)
        self._pending.append((Path(name), final))
        return Path(name)

    def commit(self) -> list[Path]:
        finals = []
        for temp, final in self._pending:
            os.replace(temp, final)
            finals.append(final)
        self._pending.clear()
        return finals

    def discard(self) -> None:
        for temp, _ in self._pending:
            temp.unlink(missing_ok=True)
        self._pending.clear()

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.commit()
