"""The one exception type for expected failures: main() prints it as `Error: …` and exits 1."""


class PipelineError(Exception):
    """An expected failure (bad input, missing key, API refusal) with a message meant for a person."""
