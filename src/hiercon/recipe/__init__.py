"""The two-stage recipe: arguments and configuration, data loading, preparation, the stages (with the
BCE baseline), the work folder, scoring, publishing, and the runner that ties them together.

``python recipes/two_stage.py configs/goemotions_demo.yaml --stage1.max_steps 100`` and
``hiercon train configs/goemotions_demo.yaml --stage1.max_steps 100`` both call :func:`main`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from hiercon.errors import HierconError

USAGE = (
    "usage: {prog} CONFIG.yaml [--section.key value | section.key=value ...]\n"
    "  sections: model, data, stage1, stage2, output (see configs/template.yaml)"
)
STAGES = ("all", "stage1", "stage2")


def main(argv: Sequence[str] | None = None, stages: str = "all", prog: str = "two_stage.py") -> int:
    """Parse a recipe file plus overrides and run it; ``stages`` is ``all``, ``stage1`` or ``stage2``.

    Returns the process exit status: 0 on success, 2 for a bad configuration.
    """
    from hiercon.recipe.config import load_recipe

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.format(prog=prog))
        return 0 if argv else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        arguments = load_recipe(argv[0], argv[1:])
        return _run(arguments, stages)
    except HierconError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(arguments, stages: str) -> int:
    from hiercon.recipe.processes import is_main_process
    from hiercon.recipe.publish import summary_text
    from hiercon.recipe.runner import require_stage1, run_recipe, run_stage1_only

    if stages == "stage1":
        folder = run_stage1_only(arguments)
        if is_main_process():
            print(f"Stage-1 model: {folder}")
        return 0
    if stages == "stage2":
        require_stage1(arguments)
    result = run_recipe(arguments)
    if is_main_process():
        print(summary_text(result))
    return 0
