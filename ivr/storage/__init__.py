"""Where things are kept: the database and its migrations, call sessions, records, console accounts and
changes, callback requests."""
