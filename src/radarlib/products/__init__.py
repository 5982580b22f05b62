"""Products made from each converted volume: COLMAX grid, PPI/COLMAX PNGs, COLMAX COG.

Modules: :mod:`~radarlib.products.polar` (read the NetCDF), :mod:`~radarlib.products.grid`
(the cached nearest-gate mapping), :mod:`~radarlib.products.colmax`,
:mod:`~radarlib.products.ppi` (images), :mod:`~radarlib.products.cog` (GeoTIFF),
:mod:`~radarlib.products.settings` (the ``[products]`` table) and
:mod:`~radarlib.products.stage` (one volume's products, run by a worker process; the daemon
that schedules them is :mod:`radarlib.pipeline.products`). See docs/products.md.
"""
