"""Input/output around the pure core: the FTP client, and the design's import path (io.ftp)."""
