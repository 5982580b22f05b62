"""Input/output around the pure core: FTP ingest and the daemons that drive the pipeline."""
