"""The local (SQLite) MLflow store shared through the cache directory: one writer at a time, and a store that
was copied or moved with its cache writes artifacts into its own directory. No mlflow import here."""

import contextlib
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """For a SQLite store, hold ``<db>.lock`` (``fcntl.flock``) while logging: MLflow creates and migrates the
    schema on first use, and two runs doing that at once lose one run's record. Inside the lock a store
    copied or moved with its cache is pointed at its own artifact directory (see ``relocate``)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    db = Path(uri[len("sqlite:///"):])
    with open(f"{db}.lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            relocate(db)
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def relocate(db: Path) -> int:
    """Rewrite artifact locations that point at another copy's ``mlartifacts`` directory (the location is an
    absolute path fixed when the experiment was created) to this store's own; returns the rows changed."""
    import sqlite3

    if not db.is_file():
        return 0
    own = (db.resolve().parent / "mlartifacts").as_uri()
    con = sqlite3.connect(str(db), timeout=60)
    try:
        if not con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='experiments'").fetchone():
            return 0
        olds = {loc for (loc,) in con.execute("SELECT artifact_location FROM experiments")
                if loc and loc.startswith("file://") and loc.endswith("/mlartifacts") and loc != own}
        changed = 0
        for old in olds:
            for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                                  ("model_versions", "source"), ("model_versions", "storage_location")):
                try:
                    changed += con.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                                           f"WHERE {column} = ? OR {column} LIKE ?",
                                           (own, len(old) + 1, old, old + "/%")).rowcount
                except sqlite3.OperationalError:  # a table or column this MLflow version does not have
                    pass
        con.commit()
        return changed
    finally:
        con.close()
