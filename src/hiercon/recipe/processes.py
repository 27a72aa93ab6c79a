"""The processes of a run: every process trains (``torchrun``, ``accelerate launch``), the main one
alone writes shared files, and all of them wait for it at the points where those files must exist."""

from __future__ import annotations


def wait_for_everyone() -> None:
    """Block until every process of the run reaches this point (a no-op for one process)."""
    from accelerate import PartialState

    PartialState().wait_for_everyone()


def is_main_process() -> bool:
    """Whether this process writes the run's shared files."""
    from accelerate import PartialState

    return PartialState().is_main_process
