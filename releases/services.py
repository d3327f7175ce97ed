"""Deploy, roll back and show a layout, whichever kind it is."""

from __future__ import annotations

from releases import engines, plain
from releases.layout import Layout
from releases.run import Outcome, Progress


def deploy(layout: Layout, ref: str, *, by: str, progress: Progress) -> Outcome:
    if layout.kind == "plain":
        return plain.deploy(layout, ref, by=by, progress=progress)
    return engines.deploy(layout, ref, by=by, progress=progress)


def rollback(layout: Layout, *, to: str | None, restore_backup: bool, backup_id: int | None, by: str,
             progress: Progress) -> Outcome:  # fmt: skip
    if layout.kind == "plain":
        return plain.rollback(layout, to=to, restore_backup=restore_backup, backup_id=backup_id, by=by,
                              progress=progress)  # fmt: skip
    return engines.rollback(layout, to=to, restore_backup=restore_backup, backup_id=backup_id, by=by,
                            progress=progress)  # fmt: skip


def status(layout: Layout) -> list[str]:
    return plain.status(layout) if layout.kind == "plain" else engines.status(layout)
