"""radarlib: Argentine weather-radar BUFR to CF/Radial NetCDF, continuously and without loss.

Data flows one way: BUFR bytes -> decoded file (:mod:`radarlib.bufr`) -> volume
(:mod:`radarlib.volume`) -> Py-ART ``Radar`` -> CF/Radial NetCDF (:mod:`radarlib.cfradial`).
The daemons in :mod:`radarlib.io.ftp` only schedule that flow and record its state.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
