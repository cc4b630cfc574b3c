"""utils.message_store: journal replay, atomic compaction, ordering, the run lock, and kill -9 safety."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from utils import message_store
from utils.errors import PipelineError
from utils.message_store import MessageStore

REPO = Path(__file__).resolve().parents[1]


def _rec(user_id: str, **fields) -> dict:
    return {"user_id": user_id, **fields}


def _ids(records: list) -> list:
    return [record.get("user_id") if isinstance(record, dict) else record for record in records]


def _journal(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def _journal_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in _journal(path).read_text(encoding="ascii").splitlines()]


def _snapshot(path: Path, folder: Path) -> Path:
    """Copy the JSON and the journal as they are on disk now: what a kill -9 at this moment leaves."""
    folder.mkdir()
    for source in (path, _journal(path)):
        if source.exists():
            shutil.copyfile(source, folder / source.name)
    return folder / path.name


def _reopen(path: Path, folder: Path, **kwargs) -> MessageStore:
    return MessageStore(_snapshot(path, folder), **kwargs)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "processed" / "processed_messages.json"


class _Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(message_store, "time", SimpleNamespace(monotonic=clock))
    return clock


# --- Opening and replay ----------------------------------------------------------------------------

def test_new_store_creates_an_empty_valid_json_and_journal(path):
    store = MessageStore(path)
    assert json.loads(path.read_text()) == []
    assert _journal(path).read_bytes() == b""
    assert store.records == {} and store.recovered == 0
    store.close()


def test_the_journal_is_private_like_the_json_it_shadows(path):
    # Both hold members' messages: readable by their owner only, whatever the umask allows.
    old_umask = os.umask(0o002)
    try:
        store = MessageStore(path)
    finally:
        os.umask(old_umask)
    try:
        assert _journal(path).stat().st_mode & 0o777 == 0o600
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        store.close()


def test_journal_is_folded_in_on_open(path):
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([_rec("a", v=1), _rec("b", v=1)]))
    _journal(path).write_text(json.dumps(_rec("b", v=2)) + "\n" + json.dumps(_rec("c", v=1)) + "\n")
    store = MessageStore(path)
    assert store.recovered == 2
    assert store.records == {"a": _rec("a", v=1), "b": _rec("b", v=2), "c": _rec("c", v=1)}
    # Folded in at once: the JSON holds everything and the journal is empty.
    assert json.loads(path.read_text()) == [_rec("a", v=1), _rec("b", v=2), _rec("c", v=1)]
    assert _journal(path).read_bytes() == b""
    store.close()


def test_replaying_an_already_compacted_journal_changes_nothing(path):
    # A kill after the JSON was replaced but before the journal was emptied.
    records = [_rec("a", v=1), "not an object", _rec("b", v=1)]
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(records))
    _journal(path).write_text("".join(json.dumps(r) + "\n" for r in (_rec("a", v=1), _rec("b", v=1))))
    MessageStore(path).close()
    MessageStore(path).close()
    assert json.loads(path.read_text()) == [_rec("a", v=1), _rec("b", v=1), "not an object"]


def test_torn_last_journal_line_is_skipped(path):
    path.parent.mkdir(parents=True)
    _journal(path).write_bytes(json.dumps(_rec("a", v=1)).encode() + b'\n{"user_id": "b", "v"')
    store = MessageStore(path)
    assert store.recovered == 1
    assert list(store.records) == ["a"]
    store.close()


def test_torn_line_cut_inside_a_utf8_character_is_skipped(path):
    path.parent.mkdir(parents=True)
    _journal(path).write_bytes(json.dumps(_rec("a")).encode() + b'\n{"user_id": "b", "m": "caf\xc3')
    store = MessageStore(path)
    assert list(store.records) == ["a"]
    store.close()


def test_record_put_after_a_journal_holding_only_a_torn_line_survives_a_kill(path, tmp_path):
    path.parent.mkdir(parents=True)
    _journal(path).write_bytes(b'{"user_id": "a", "v')  # nothing recoverable, but not empty
    store = MessageStore(path, compact_seconds=3600)
    assert store.recovered == 0
    store.put(_rec("b", v=1))
    # Appended right after the torn bytes, the new line would be unreadable.
    recovered = _reopen(path, tmp_path / "crash")
    assert recovered.records == {"b": _rec("b", v=1)}
    recovered.close()
    store.close()


@pytest.mark.parametrize("text", ["[{\"user_id\": \"a\",", "{\"user_id\": \"a\"}", "[NaN]"])
def test_malformed_json_raises_and_leaves_both_files_untouched(path, text):
    path.parent.mkdir(parents=True)
    path.write_text(text)
    journal_text = json.dumps(_rec("b")) + "\n"
    _journal(path).write_text(journal_text)
    with pytest.raises(PipelineError, match="processed_messages.json") as excinfo:
        MessageStore(path)
    assert path.read_text() == text
    assert _journal(path).read_text() == journal_text
    # The lock is released at once, even while the exception (and its frames) is still alive.
    assert excinfo.value is not None
    path.write_text("[]")
    store = MessageStore(path)
    assert list(store.records) == ["b"]
    store.close()


def test_unkeyed_records_are_kept_at_the_end(path):
    path.parent.mkdir(parents=True)
    saved = [{"no_id": 1}, _rec("a"), {"user_id": ""}, 7, {"user_id": 5}]
    path.write_text(json.dumps(saved))
    store = MessageStore(path, compact_seconds=0)
    store.put(_rec("b"))
    store.close()
    assert json.loads(path.read_text()) == [_rec("a"), _rec("b"), {"no_id": 1}, {"user_id": ""}, 7, {"user_id": 5}]


def test_stale_temp_files_of_a_killed_save_are_removed(path):
    path.parent.mkdir(parents=True)
    stale = path.parent / f".{path.name}.abc123.tmp"
    stale.write_text("[{")
    other = path.parent / ".other.json.abc123.tmp"
    other.write_text("x")
    MessageStore(path).close()
    assert not stale.exists() and other.exists()


# --- Ordering ---------------------------------------------------------------------------------------

def test_order_ids_first_then_others_in_saved_order(path):
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([_rec("x"), _rec("b", v=1), _rec("y"), "junk"]))
    store = MessageStore(path, order=["a", "b", "c", "a"], compact_seconds=3600)
    store.put(_rec("z"))
    store.put(_rec("c"))
    store.put(_rec("a"))
    store.put(_rec("x", v=2))  # a replaced record keeps its place
    expected = ["a", "b", "c", "x", "y", "z", "junk"]
    assert _ids(store.ordered_records()) == expected
    store.close()
    assert _ids(json.loads(path.read_text())) == expected
    assert json.loads(path.read_text())[3] == _rec("x", v=2)


# --- put, get, compaction ---------------------------------------------------------------------------

def test_put_is_in_the_journal_before_it_returns_and_fsynced_each_time(path, monkeypatch):
    store = MessageStore(path, compact_seconds=3600)
    journal_inode = os.stat(_journal(path)).st_ino
    journal_fsyncs = []
    real_fsync = os.fsync

    def counting_fsync(fd):
        if os.fstat(fd).st_ino == journal_inode:
            journal_fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    for number in range(5):
        store.put(_rec(f"u{number}", n=number))
        assert len(journal_fsyncs) == number + 1
        assert _journal_lines(path)[-1] == _rec(f"u{number}", n=number)
    assert store.get("u3") == _rec("u3", n=3)
    assert store.get("nobody") is None
    store.close()


def test_json_is_rewritten_at_most_every_compact_seconds(path, clock, monkeypatch):
    writes = []
    real_save = message_store.save_json_atomic
    monkeypatch.setattr(message_store, "save_json_atomic",
                        lambda target, data: (writes.append(_ids(data)), real_save(target, data)))
    store = MessageStore(path, compact_seconds=2.0)
    assert writes == [[]]  # the missing JSON is created on open
    clock.now += 0.5
    store.put(_rec("a"))
    clock.now += 1.0
    store.put(_rec("b"))
    assert writes == [[]] and json.loads(path.read_text()) == []
    assert _ids(_journal_lines(path)) == ["a", "b"]
    clock.now += 0.5
    store.put(_rec("c"))
    assert writes == [[], ["a", "b", "c"]]
    assert _journal(path).read_bytes() == b""
    clock.now += 0.1
    store.put(_rec("d"))
    assert len(writes) == 2
    store.close()
    assert writes[-1] == ["a", "b", "c", "d"]
    assert _ids(json.loads(path.read_text())) == ["a", "b", "c", "d"]
    assert not _journal(path).exists()


def test_compact_writes_json_and_empties_journal(path):
    store = MessageStore(path, compact_seconds=3600)
    store.put(_rec("a"))
    store.compact()
    assert json.loads(path.read_text()) == [_rec("a")]
    assert _journal(path).read_bytes() == b""
    store.put(_rec("b"))
    assert _ids(_journal_lines(path)) == ["b"]
    store.close()


def test_failed_compaction_keeps_the_journal(path, tmp_path, monkeypatch):
    store = MessageStore(path, compact_seconds=0)
    store.put(_rec("a"))

    def failing_save(target, data):
        raise PipelineError(f"cannot write {target}: No space left on device")

    monkeypatch.setattr(message_store, "save_json_atomic", failing_save)
    with pytest.raises(PipelineError, match="No space left"):
        store.put(_rec("b"))
    assert json.loads(path.read_text()) == [_rec("a")]
    assert _ids(_journal_lines(path)) == ["b"]
    with pytest.raises(PipelineError):
        store.close()
    # The journal stays for the next run, and the lock is released.
    assert _ids(_journal_lines(path)) == ["b"]
    monkeypatch.undo()
    store = MessageStore(path)
    assert store.recovered == 1 and list(store.records) == ["a", "b"]
    store.close()


def test_put_keeps_what_was_saved_not_the_callers_later_edits(path):
    store = MessageStore(path, compact_seconds=3600)
    record = _rec("a", tags=("x", "y"), v=1)
    store.put(record)
    record["v"] = 2
    assert store.get("a") == {"user_id": "a", "tags": ["x", "y"], "v": 1}
    store.close()
    assert json.loads(path.read_text()) == [{"user_id": "a", "tags": ["x", "y"], "v": 1}]


@pytest.mark.parametrize("record", [{"v": 1}, {"user_id": ""}, {"user_id": 7}, "a"])
def test_put_rejects_records_without_a_user_id(path, record):
    store = MessageStore(path)
    with pytest.raises(ValueError, match="user_id"):
        store.put(record)
    assert _journal(path).read_bytes() == b""
    store.close()


@pytest.mark.parametrize("value", [float("nan"), {1, 2}, object()])
def test_put_rejects_what_the_json_could_not_hold_and_writes_nothing(path, value):
    store = MessageStore(path, compact_seconds=0)
    with pytest.raises(PipelineError, match="cannot save the record of a"):
        store.put(_rec("a", bad=value))
    assert _journal(path).read_bytes() == b""
    assert store.get("a") is None
    store.put(_rec("b"))  # the store still works
    store.close()
    assert json.loads(path.read_text()) == [_rec("b")]


def test_non_ascii_and_lone_surrogates_round_trip(path, tmp_path):
    store = MessageStore(path, compact_seconds=3600)
    record = _rec("a", message="Café 🍝 \ud83d end")
    store.put(record)
    assert _journal(path).read_bytes().isascii()
    recovered = _reopen(path, tmp_path / "crash")
    assert recovered.get("a") == record
    recovered.close()
    store.close()
    assert json.loads(path.read_text(encoding="utf-8")) == [record]


def test_close_removes_the_journal_is_idempotent_and_ends_writing(path):
    store = MessageStore(path, compact_seconds=3600)
    store.put(_rec("a"))
    store.close()
    assert not _journal(path).exists()
    assert json.loads(path.read_text()) == [_rec("a")]
    store.close()
    with pytest.raises(ValueError, match="closed"):
        store.put(_rec("b"))
    with pytest.raises(ValueError, match="closed"):
        store.compact()


def test_context_manager_closes(path):
    with MessageStore(path, compact_seconds=3600) as store:
        store.put(_rec("a"))
    assert json.loads(path.read_text()) == [_rec("a")] and not _journal(path).exists()


def test_put_from_many_threads(path, tmp_path):
    store = MessageStore(path, compact_seconds=0.001)
    start = threading.Barrier(8)

    def worker(number):
        start.wait()
        for item in range(40):
            store.put(_rec(f"t{number}-{item}", text="x" * (item * 50)))

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = {f"t{number}-{item}" for number in range(8) for item in range(40)}
    # Every journal line intact (no interleaving), and the on-disk state complete.
    assert all(line["user_id"] in expected for line in _journal_lines(path))
    recovered = _reopen(path, tmp_path / "crash")
    assert set(recovered.records) == expected
    recovered.close()
    store.close()
    saved = json.loads(path.read_text())
    assert len(saved) == len(expected) and set(_ids(saved)) == expected


# --- The run lock -----------------------------------------------------------------------------------

def test_second_store_in_the_same_process_is_refused_while_the_first_is_open(path):
    first = MessageStore(path)
    with pytest.raises(PipelineError, match="another step 5 run is writing"):
        MessageStore(path)
    first.put(_rec("a"))  # the refused open touched nothing
    first.close()
    second = MessageStore(path)
    assert list(second.records) == ["a"]
    second.close()


_LOCK_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from utils.errors import PipelineError
from utils.message_store import MessageStore
try:
    MessageStore(sys.argv[2]).close()
except PipelineError as exc:
    print("refused:", exc)
else:
    print("opened")
"""


def test_another_process_is_refused_while_the_store_is_open(path):
    def probe() -> str:
        result = subprocess.run([sys.executable, "-c", _LOCK_PROBE, str(REPO), str(path)],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout

    store = MessageStore(path)
    assert probe().startswith("refused: another step 5 run is writing")
    store.close()
    assert probe() == "opened\n"


# --- kill -9 at random moments ------------------------------------------------------------------------

_WRITER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from utils.message_store import MessageStore
store = MessageStore(sys.argv[2], order=[f"u{n:05d}" for n in range(0, 100000, 7)], compact_seconds=0.01)
round_number, first = int(sys.argv[3]), int(sys.argv[4])
print("ready", flush=True)
for number in range(first, first + 100000):
    user_id = f"u{number:05d}"
    store.put({"user_id": user_id, "round": round_number, "text": "x" * (number % 7 * 40)})
    print("done", user_id, flush=True)
    # Now and then rewrite a record of an earlier round.
    if number % 5 == 0 and number >= 10:
        old_id = f"u{number - 10:05d}"
        store.put({"user_id": old_id, "round": round_number, "rewritten": True})
        print("done", old_id, flush=True)
    time.sleep(0.001)
"""


def test_killed_writer_loses_nothing_acknowledged_and_json_is_always_valid(path):
    rng = random.Random(20240605)
    acknowledged: dict[str, int] = {}  # user id -> round of its last acknowledged put
    bad_reads: list[str] = []
    reads = 0
    stop_polling = threading.Event()

    def poll():
        nonlocal reads
        while not stop_polling.is_set():
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            reads += 1
            try:
                data = json.loads(text)
                assert isinstance(data, list) and all(isinstance(item, dict) for item in data)
            except (ValueError, AssertionError):
                bad_reads.append(text[:200])
            time.sleep(0.0005)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    first = 0
    try:
        for round_number in range(6):
            writer = subprocess.Popen(
                [sys.executable, "-c", _WRITER, str(REPO), str(path), str(round_number), str(first)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            assert writer.stdout.readline() == "ready\n", writer.stderr.read()
            time.sleep(rng.uniform(0.05, 0.4))
            os.kill(writer.pid, signal.SIGKILL)
            output = writer.stdout.read()
            writer.wait(timeout=10)
            assert writer.returncode == -signal.SIGKILL
            done = [line.split()[1] for line in output.splitlines() if line.startswith("done ")]
            assert len(done) >= 3, writer.stderr.read()
            for user_id in done:
                acknowledged[user_id] = round_number

            # What a kill leaves on disk is a valid list of records...
            saved = json.loads(path.read_text(encoding="utf-8"))
            assert isinstance(saved, list) and all(isinstance(item, dict) for item in saved)
            # ...and, with the journal, every acknowledged record in its last acknowledged version
            # (a put in flight may have landed, but only for the one user it was writing).
            store = MessageStore(path)
            assert set(acknowledged) <= set(store.records)
            in_flight = {user_id for user_id, record in store.records.items()
                         if acknowledged.get(user_id) != record["round"]}
            assert len(in_flight) <= 1
            # A put in flight may have landed, but only for the one user it was writing.
            acknowledged.update((user_id, store.records[user_id]["round"]) for user_id in in_flight)
            store.close()
            assert not list(path.parent.glob("*.tmp"))
            first = max(int(user_id[1:]) for user_id in acknowledged) + 20
    finally:
        stop_polling.set()
        poller.join(timeout=5)
    assert not bad_reads
    assert reads > 20
    final = json.loads(path.read_text(encoding="utf-8"))
    assert {record["user_id"]: record["round"] for record in final} == acknowledged


def test_snapshot_is_a_copy_of_the_records_by_user_id(tmp_path):
    store = MessageStore(tmp_path / "processed_messages.json")
    store.put({"user_id": "u1", "status": "approved"})
    snapshot = store.snapshot()
    store.put({"user_id": "u2", "status": "approved"})
    assert list(snapshot) == ["u1"] and list(store.snapshot()) == ["u1", "u2"]
    store.close()


def test_a_slow_rewrite_spaces_out_the_next_ones(tmp_path, monkeypatch):
    import utils.message_store as message_store

    now = {"t": 1000.0}
    monkeypatch.setattr(message_store.time, "monotonic", lambda: now["t"])
    real_save = message_store.save_json_atomic

    def slow_save(path, data):
        now["t"] += 0.5  # each rewrite "takes" half a second
        real_save(path, data)

    monkeypatch.setattr(message_store, "save_json_atomic", slow_save)
    store = MessageStore(tmp_path / "processed_messages.json", compact_seconds=2.0)
    rewrites = []
    monkeypatch.setattr(store, "_compact_locked", lambda real=store._compact_locked: rewrites.append(1) or real())
    for index in range(30):
        now["t"] += 2.0
        store.put({"user_id": f"u{index}"})
    # 0.5 s per rewrite at a 2 % share: at most one rewrite per 25 s, not one per 2 s.
    assert 2 <= len(rewrites) <= 3
    store.close()
    assert len(json.loads((tmp_path / "processed_messages.json").read_text())) == 30
