"""Step 5's output file, kept safe while users finish one by one.

`processed_messages.json` is only ever replaced atomically. Between two replacements every finished
record is appended to a journal (`processed_messages.json.journal`, one JSON line each, fsynced before
`put` returns), so a run killed at any moment loses at most the users that were still in flight. The
next run folds the journal back into the JSON before it starts. A lock file
(`processed_messages.json.lock`) keeps a second run from writing the same file at the same time.
"""

import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from utils.errors import PipelineError
from utils.jsonio import load_json_list, save_json_atomic


#: Rewriting the JSON while records arrive takes at most this share of the run's time.
MAX_COMPACT_SHARE = 0.02


def _user_id_of(record: Any) -> Optional[str]:
    user_id = record.get("user_id") if isinstance(record, dict) else None
    return user_id if isinstance(user_id, str) and user_id else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _fsync_folder(folder: Path) -> None:
    # Makes the rename of the new JSON durable before the journal that backs it is emptied.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename itself is still atomic
    finally:
        os.close(fd)


class MessageStore:
    """Records keyed by `user_id`, persisted atomically with a journal in between.

    Thread-safe: `put`, `get`, `ordered_records` and `compact` may be called from many threads.
    Read `records` directly only while no other thread is writing.
    """

    def __init__(self, path: Path, order: Iterable[str] = (), compact_seconds: float = 2.0):
        """Open the store: take its lock, load the JSON, fold in any journal left by a killed run.

        Args:
            path: The JSON file (e.g. data/processed/processed_messages.json).
            order: User ids in the order records should appear; others follow in their saved order.
            compact_seconds: How often, at most, the JSON is rewritten while records arrive. When a
                rewrite takes long (a big file), the next one waits longer, so that rewriting never
                takes more than MAX_COMPACT_SHARE of the run's time; the journal keeps every record safe.

        Raises:
            PipelineError: The file is malformed (it is left untouched), or another run holds the lock.
        """
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.compact_seconds = compact_seconds
        self.records: dict[str, dict] = {}
        self.recovered = 0
        self._order = list(dict.fromkeys(order))
        self._unkeyed: list = []
        self._lock = threading.Lock()
        self._journal_fd: Optional[int] = None
        self._closed = False
        self._last_compact = time.monotonic()
        self._compact_interval = compact_seconds
        self._lock_file = self._acquire_run_lock()
        try:
            self._open()
        except BaseException:
            if self._journal_fd is not None:
                os.close(self._journal_fd)
            self._release_run_lock()
            raise

    def __enter__(self) -> "MessageStore":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    # --- Opening -----------------------------------------------------------------------------------

    def _acquire_run_lock(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_file = self.lock_path.open("a")
        except OSError as exc:
            raise PipelineError(f"cannot create {self.lock_path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise PipelineError(
                f"another step 5 run is writing {self.path}; wait for it to finish (or stop it) and re-run"
            ) from None
        except OSError as exc:
            lock_file.close()
            raise PipelineError(f"cannot lock {self.lock_path}: {exc.strerror or exc}") from None
        return lock_file

    def _release_run_lock(self) -> None:
        # Closing the only descriptor of the lock file releases the flock.
        self._lock_file.close()

    def _open(self) -> None:
        if self.path.exists():
            for record in load_json_list(self.path, what="processed messages"):
                self._remember(record)
        journal_had_content = self._replay_journal()
        self._remove_stale_temp_files()
        try:
            # Owner-only, like the JSON it shadows (write_text_atomic): both hold people's messages.
            self._journal_fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise PipelineError(f"cannot open {self.journal_path}: {exc.strerror or exc}") from None
        if journal_had_content or not self.path.exists():
            # Folding the journal in now also drops a torn last line, which new lines must never
            # follow (they would be glued to it and lost). A missing JSON is created so that the
            # file is a valid list from the moment the run starts.
            self._compact_locked()

    def _remember(self, record: Any) -> None:
        user_id = _user_id_of(record)
        if user_id is not None:
            self.records[user_id] = record
        else:
            # Not ours to judge: keep what we cannot key, so no earlier work is ever dropped.
            self._unkeyed.append(record)

    def _replay_journal(self) -> bool:
        """Fold the journal's records in (idempotent: by user id, last one wins); True if it had bytes."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise PipelineError(f"cannot read {self.journal_path}: {exc.strerror or exc}") from None
        recovered: set[str] = set()
        for line in data.split(b"\n"):
            try:
                record = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
            except ValueError:  # also UnicodeDecodeError and JSONDecodeError
                # A line torn by a kill mid-write was never acknowledged to anyone: skip it.
                continue
            user_id = _user_id_of(record)
            if user_id is None:
                continue  # `put` never writes such a line
            self.records[user_id] = record
            recovered.add(user_id)
        self.recovered = len(recovered)
        return bool(data)

    def _remove_stale_temp_files(self) -> None:
        # Temp files of save_json_atomic left by a run killed mid-save; we hold the lock, so no
        # other writer of this file can be using them.
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            try:
                stale.unlink()
            except OSError:
                pass

    # --- Reading -----------------------------------------------------------------------------------

    def get(self, user_id: str) -> Optional[dict]:
        """The saved record of a user, or None."""
        with self._lock:
            return self.records.get(user_id)

    def snapshot(self) -> dict[str, dict]:
        """A copy of the records by user id, safe to read while other threads write."""
        with self._lock:
            return dict(self.records)

    def ordered_records(self) -> list:
        """Every record: those in `order` first, then the rest as they were saved."""
        with self._lock:
            return self._ordered_locked()

    def _ordered_locked(self) -> list:
        ordered = [self.records[user_id] for user_id in self._order if user_id in self.records]
        listed = set(self._order)
        ordered += [record for user_id, record in self.records.items() if user_id not in listed]
        return ordered + self._unkeyed

    # --- Writing -----------------------------------------------------------------------------------

    def put(self, record: dict) -> None:
        """Save one record durably (journal now, fsynced; JSON at the next compaction).

        Args:
            record: A message record with a non-empty string `user_id`. A later record with the
                same `user_id` replaces the earlier one.

        Raises:
            ValueError: The record has no usable `user_id`, or the store is closed.
            PipelineError: The record is not JSON-serialisable, or the journal or JSON cannot be written.
        """
        user_id = _user_id_of(record)
        if user_id is None:
            raise ValueError(f"a message record needs a non-empty string user_id, got {record!r:.200}")
        try:
            # ASCII lines: a torn write can never split a multi-byte character, and lone surrogates
            # survive as escapes. No NaN: it could never be written to the JSON.
            line = json.dumps(record, ensure_ascii=True, allow_nan=False) + "\n"
        except (TypeError, ValueError) as exc:
            raise PipelineError(f"cannot save the record of {user_id}: not JSON-serialisable ({exc})") from None
        # Keep exactly what a reload would give, whatever the caller does to its dict afterwards.
        saved = json.loads(line)
        with self._lock:
            if self._closed:
                raise ValueError(f"the message store of {self.path} is closed")
            self._append_locked(line.encode("ascii"))
            self.records[user_id] = saved
            if time.monotonic() - self._last_compact >= self._compact_interval:
                self._compact_locked()

    def _append_locked(self, data: bytes) -> None:
        fd = self._journal_fd
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            # A half-written line would swallow the next one: cut the journal back to where it was.
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise PipelineError(f"cannot write {self.journal_path}: {exc.strerror or exc}") from None

    def compact(self) -> None:
        """Rewrite the JSON atomically and empty the journal."""
        with self._lock:
            if self._closed:
                raise ValueError(f"the message store of {self.path} is closed")
            self._compact_locked()

    def _compact_locked(self) -> None:
        # JSON first (atomic and durable), journal second: a kill in between only means the journal
        # is replayed again, which changes nothing.
        started = time.monotonic()
        save_json_atomic(self.path, self._ordered_locked())
        _fsync_folder(self.path.parent)
        try:
            os.ftruncate(self._journal_fd, 0)
        except OSError as exc:
            raise PipelineError(f"cannot empty {self.journal_path}: {exc.strerror or exc}") from None
        self._last_compact = time.monotonic()
        if self.compact_seconds > 0:
            self._compact_interval = max(self.compact_seconds, (self._last_compact - started) / MAX_COMPACT_SHARE)

    def close(self) -> None:
        """Write the final JSON, remove the journal and release the lock (a second call does nothing).

        If the final JSON cannot be written the journal is kept, and the next run folds it in.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            compacted = False
            try:
                self._compact_locked()
                compacted = True
            finally:
                os.close(self._journal_fd)
                if compacted:
                    # Removed while we still hold the lock, so it cannot be another run's journal.
                    self.journal_path.unlink(missing_ok=True)
                self._release_run_lock()
