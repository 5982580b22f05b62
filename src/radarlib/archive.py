"""The dated archive layout: folder templates with ``{year}``/``{month}``/``{day}``/``{hour}``.

At the network's cadence one flat folder gets ~100,000 files per radar per year, so
``paths.bufr_dir`` and ``paths.netcdf_dir`` may split the archive by the volume's
observation time, e.g. ``{root}/{radar}/netcdf/{year}/{month}/{day}``. A template is filled
in two steps: the configuration fills ``{root}`` and ``{radar}`` once per radar
(:func:`fill_static`, the time placeholders stay), and the daemons fill the time of each
volume (:func:`dated_folder`). Pure functions: no file is touched here.

>>> from datetime import datetime, timezone
>>> t = datetime(2025, 11, 18, 12, 30, tzinfo=timezone.utc)
>>> archive_folder("/data/{radar}/nc/{year}/{month}/{day}", "RMA1", t)
PosixPath('/data/RMA1/nc/2025/11/18')
>>> base_folder("/data/RMA1/nc/{year}/{month}/{day}")
PosixPath('/data/RMA1/nc')

Existing databases keep finding their files whatever the template becomes: every file's
absolute path is stored in the state database when it is written.
"""

from __future__ import annotations

import os
import string
from datetime import datetime, timedelta, timezone
from pathlib import Path

__all__ = [
    "STATIC_FIELDS",
    "TEMPLATE_FIELDS",
    "TIME_FIELDS",
    "archive_folder",
    "base_folder",
    "dated_folder",
    "fill_static",
    "is_dated",
    "placeholders",
    "recent_folders",
]

#: Filled once per radar by the configuration.
STATIC_FIELDS = ("root", "radar")
#: Filled per volume from its observation time (UTC), zero-padded (``2025``, ``11``, ``08``).
TIME_FIELDS = ("year", "month", "day", "hour")
#: Every placeholder a folder template may use.
TEMPLATE_FIELDS = frozenset(STATIC_FIELDS + TIME_FIELDS)


def placeholders(template: str | os.PathLike[str]) -> set[str]:
    """The placeholder names of a template (``ValueError`` for a malformed one)."""
    text = os.fspath(template)
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def is_dated(template: str | os.PathLike[str]) -> bool:
    """True when the template splits the archive by time (uses a time placeholder)."""
    return bool(placeholders(template) & set(TIME_FIELDS))


def _time_values(moment: datetime) -> dict[str, str]:
    t = moment.astimezone(timezone.utc) if moment.tzinfo else moment
    return {"year": f"{t:%Y}", "month": f"{t:%m}", "day": f"{t:%d}", "hour": f"{t:%H}"}


def fill_static(template: str, *, root: str | os.PathLike[str], radar: str) -> str:
    """Fill ``{root}`` and ``{radar}``; time placeholders stay for :func:`dated_folder`."""
    if not is_dated(template):
        return template.format(root=os.fspath(root), radar=radar)
    keep = {name: "{" + name + "}" for name in TIME_FIELDS}
    escaped_root = os.fspath(root).replace("{", "{{").replace("}", "}}")
    return template.format(root=escaped_root, radar=radar, **keep)


def dated_folder(folder: str | os.PathLike[str], moment: datetime) -> Path:
    """A folder whose ``{root}``/``{radar}`` are filled, with the time of ``moment`` filled in."""
    text = os.fspath(folder)
    if not is_dated(text):
        return Path(text)
    return Path(text.format(**_time_values(moment)))


def archive_folder(
    template: str, radar: str, moment: datetime, *, root: str | os.PathLike[str] = ""
) -> Path:
    """(template, radar, observation time) -> the folder a file of that volume belongs in."""
    return dated_folder(fill_static(template, root=root, radar=radar), moment)


def base_folder(folder: str | os.PathLike[str]) -> Path:
    """The fixed part of a dated folder: the path up to the first component with a placeholder.

    It holds every dated sub-folder; the daemons create it at start and retention never
    removes it.
    """
    path = Path(os.fspath(folder))
    if not is_dated(path):
        return path
    kept: list[str] = []
    for part in path.parts:
        if placeholders(part):
            break
        kept.append(part.replace("{{", "{").replace("}}", "}"))
    return Path(*kept) if kept else Path(".")


def recent_folders(folder: str | os.PathLike[str], now: datetime, hours: float) -> list[Path]:
    """The distinct dated folders of the last ``hours`` up to ``now`` (the base when undated)."""
    if not is_dated(folder):
        return [Path(os.fspath(folder))]
    seen: dict[Path, None] = {}
    moment = now - timedelta(hours=hours)
    while moment <= now + timedelta(hours=1):
        seen.setdefault(dated_folder(folder, moment), None)
        moment += timedelta(hours=1)
    return list(seen)
