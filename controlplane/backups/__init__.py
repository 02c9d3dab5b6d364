"""Backups, WAL archiving and restore validation of the inventory database with pgBackRest.

* ``pgbackrest.py``: the pgBackRest command line as an adapter (backup, info, restore, with
  pgBackRest's own error messages as typed errors) and its configuration file;
* ``archive.py``: where WAL archiving stands on the primary (``pg_stat_archiver`` against the
  current LSN, and pgBackRest's last error when it fails);
* ``backup.py``: one backup taken and described from pgBackRest's ``info``;
* ``scratch.py``: a restore into a scratch folder, started on a free port, stopped and removed;
* ``validation.py``: the restore validation: a consistent reference point on the source, the
  latest backup restored to it and a point-in-time restore to the same instant, each checked.

pgBackRest (not this package) moves the data; the control plane decides when, audits, records
and checks what came back.
"""
