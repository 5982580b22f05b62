"""The stateful core: the SQLite state store shared by the download and processing daemons."""
