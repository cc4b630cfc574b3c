"""Uploading finished records to Airtable from a background thread while the run goes on."""

import threading
import time
from typing import Optional

from pipeline.match_message.team_loop import message_sha256
from utils import airtable_crud
from utils.errors import PipelineError
from utils.message_store import MessageStore


class Uploader:
    """A background thread that upserts finished records to Airtable in batches of up to 10.

    Upserts are keyed on the user id, so a record sent twice (a retry, a re-run, a kill between
    upload and save) updates the member's one row instead of adding another. An error the thread
    cannot handle (e.g. the disk is full while saving) stops it and is raised by `close()` as a
    PipelineError, so it reaches the normal `Error:` path instead of a thread traceback.
    """

    BATCH_SIZE = 10

    def __init__(self, store: MessageStore, logger, max_wait_seconds: float = 1.0):
        self.store = store
        self.logger = logger
        self.max_wait_seconds = max_wait_seconds
        self.uploaded = 0
        self.failed = 0
        self.fatal: Optional[BaseException] = None
        self._pending: list[dict] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="airtable-uploader", daemon=True)
        self._thread.start()

    def submit(self, record: dict) -> None:
        """Queue one record for upload."""
        with self._cond:
            self._pending.append(record)
            self._cond.notify_all()

    def close(self) -> None:
        """Upload what is queued and stop the thread.

        Raises:
            PipelineError: The thread stopped on an unexpected error; what was saved before stays saved.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        if self.fatal is not None:
            raise PipelineError(f"the Airtable upload stopped: {self.fatal}; records not uploaded stay marked "
                                "so, and a re-run uploads them without new Claude calls") from self.fatal

    def _next_batch(self) -> list[dict]:
        with self._cond:
            deadline = time.monotonic() + self.max_wait_seconds
            while len(self._pending) < self.BATCH_SIZE and not self._closing:
                remaining = deadline - time.monotonic()
                if self._pending and remaining <= 0:
                    break
                self._cond.wait(timeout=remaining if self._pending else None)
            batch, self._pending = self._pending[:self.BATCH_SIZE], self._pending[self.BATCH_SIZE:]
            return batch

    def _run(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if not batch:
                    return
                self._upload(batch)
        except BaseException as exc:  # noqa: BLE001 - reported by close(), never as a thread traceback
            self.fatal = exc
            with self._cond:
                self._pending.clear()

    def _upload(self, batch: list[dict]) -> None:
        try:
            airtable_ids = airtable_crud.upsert_message_records(batch, logger=self.logger)
        except airtable_crud.AirtableError as exc:
            if exc.status_code == 422 and len(batch) > 1:
                # Airtable refuses the whole batch for one bad record: find it, upload the others.
                for record in batch:
                    self._upload([record])
                return
            self._mark_failed(batch, exc)
            return
        except Exception as exc:  # noqa: BLE001 - the records stay "not uploaded"; a re-run retries them
            self._mark_failed(batch, exc)
            return
        self.uploaded += len(batch)
        for record, airtable_id in zip(batch, airtable_ids):
            # The hash of the text now in the row: a later run sees whether the team edited it.
            message = record.get("message")
            sha = message_sha256(message) if isinstance(message, str) and message.strip() else None
            updated = {**record, "airtable_id": airtable_id, "uploaded": True, "uploaded_message_sha256": sha}
            updated.pop("upload_error", None)
            self.store.put(updated)

    def _mark_failed(self, batch: list[dict], exc: Exception) -> None:
        self.failed += len(batch)
        self.logger.error("upload of %d records failed: %s", len(batch), exc)
        for record in batch:
            self.store.put({**record, "uploaded": False, "upload_error": str(exc)})
