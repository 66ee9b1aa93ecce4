"""Shared Prefect task options."""

from __future__ import annotations

from inrcore.errors import InrflowError


def retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry transient failures (I/O, a locked database), never bad input: it fails the same way again."""
    try:
        state.result()
    except InrflowError:
        return False
    except Exception:  # noqa: BLE001 - any other failure may be transient
        return True
    return False
