"""RMA/OPERA radar BUFR: a table-driven pure-Python/numpy decoder and an encoder for its template.

>>> from radarlib.bufr import read_bufr
>>> f = read_bufr("RMA11_0315_01_DBZH_20251020T152828Z.BUFR")  # doctest: +SKIP
>>> f.radar, f.field, len(f.sweeps)                             # doctest: +SKIP
('RMA11', 'DBZH', 15)
"""

from radarlib.bufr.model import (
    NODATA,
    UNDETECT,
    BufrFile,
    GateStatus,
    Quantity,
    Section1,
    Station,
    StationId,
    Sweep,
    classify,
    masked,
)
from radarlib.bufr.reader import read_bufr
from radarlib.bufr.writer import write_bufr, write_bufr_file

__all__ = [
    "NODATA",
    "UNDETECT",
    "BufrFile",
    "GateStatus",
    "Quantity",
    "Section1",
    "Station",
    "StationId",
    "Sweep",
    "classify",
    "masked",
    "read_bufr",
    "write_bufr",
    "write_bufr_file",
]
