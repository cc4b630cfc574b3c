"""Where things live: every default path is resolved from the repo root, never the current directory."""

from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = PROJ_ROOT / "data"
DEFAULT_LOG_DIR = PROJ_ROOT / "logs"
ENV_FILE = PROJ_ROOT / ".env"

# Raw MongoDB exports (data/raw/)
USERS_FILE = "users.json"
EVENTS_FILE = "events.json"
MESSAGES_FILE = "messages.json"
OPT_OUTS_FILE = "opt_outs.json"  # optional: people who asked not to be messaged

# Step outputs (data/processed/)
QUALIFIED_USERS_FILE = "qualified_users.json"
QUALIFIED_EVENTS_FILE = "qualified_events.json"
ENRICHED_USERS_FILE = "enriched_users.json"
ENRICHED_EVENTS_FILE = "enriched_events.json"
PROCESSED_MESSAGES_FILE = "processed_messages.json"
PREVIEW_MESSAGES_FILE = "preview_messages.json"  # step 5 --preview: never read by a run
REVIEW_PAGE_FILE = "review.html"  # step 5: the review page of the last run or preview


def raw_path(data_dir: Path, name: str) -> Path:
    """Path of a raw export.

    Args:
        data_dir: The data folder that holds `raw/` and `processed/`.
        name: The file name, e.g. `USERS_FILE`.

    Returns:
        `data_dir/raw/name`.
    """
    return Path(data_dir) / "raw" / name


def processed_path(data_dir: Path, name: str) -> Path:
    """Path of a step output.

    Args:
        data_dir: The data folder that holds `raw/` and `processed/`.
        name: The file name, e.g. `QUALIFIED_USERS_FILE`.

    Returns:
        `data_dir/processed/name`.
    """
    return Path(data_dir) / "processed" / name
