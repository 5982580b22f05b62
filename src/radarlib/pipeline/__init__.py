"""The pipeline's moving parts: the daemons that schedule the flow and record its state.

- :mod:`~radarlib.pipeline.download`: the date-based FTP download daemon;
- :mod:`~radarlib.pipeline.scan`: which remote hour folders to list, pure date arithmetic;
- :mod:`~radarlib.pipeline.processing`: the processing daemon (complete volumes → NetCDF);
- :mod:`~radarlib.pipeline.workers` and :mod:`~radarlib.pipeline.dask_pool`: where
  conversions run (local worker processes, or a Dask.distributed cluster);
- :mod:`~radarlib.pipeline.supervisor`: :class:`Pipeline`, every daemon of a config on one
  event loop, as ``radarlib run`` and ``radarlib demo`` use it.

The design's import path :mod:`radarlib.io.ftp` re-exports the daemons and their configs.
"""
