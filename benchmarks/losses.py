"""Speed and peak memory of hiercon's contrastive losses (forward + backward, CPU).

For every loss and every (batch, labels) size the script measures the best wall time (of a few
repeats) of a forward and backward pass and the peak memory it adds, beside pytorch-metric-learning's
``SupConLoss`` at the same batch and dimension (the ``pml`` column: ratio = loss time / pml time),
and, at a small batch, beside the plain Python-loop implementation of the same equation
(``tests/reference_losses.py``).

Memory: each measurement runs in a forked child process; the peak is the growth of the child's
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the resident-set high-water mark, which sees
torch's CPU allocations, unlike ``tracemalloc``) between the moment its inputs exist and the end of
the timed passes. It includes the autograd graph and the gradients.

Usage::

    python benchmarks/losses.py --quick                 # seconds
    python benchmarks/losses.py --output losses.json --markdown benchmarks/results/losses.md
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DIM = 128
LOOP_BATCH, LOOP_LABELS = 32, 10


@dataclass
class Case:
    """Inputs of one measurement: a batch of ``batch`` rows and ``num_labels`` labels."""

    batch: int
    num_labels: int
    seed: int = 0

    def embeddings(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randn(self.batch, DIM, generator=generator)

    def class_ids(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + 1)
        return torch.randint(0, self.num_labels, (self.batch,), generator=generator)

    def multi_hot(self) -> torch.Tensor:
        """About three labels per row (at least the row's class), fewer when there are few labels."""
        generator = torch.Generator().manual_seed(self.seed + 2)
        density = min(0.3, 2.0 / self.num_labels)
        labels = (torch.rand(self.batch, self.num_labels, generator=generator) < density).float()
        labels[torch.arange(self.batch), self.class_ids()] = 1.0
        return labels


# A runner builds the loss for a case and returns a closure doing one forward + backward.
Runner = Callable[[Case], Callable[[], None]]


def _backward(loss_fn: Callable[..., object], embeddings: torch.Tensor, *args: object) -> Callable[[], None]:
    from hiercon.losses.base import ContrastiveLoss

    leaf = embeddings.clone().requires_grad_(True)

    def step() -> None:
        leaf.grad = None
        ContrastiveLoss.total(loss_fn(leaf, *args)).backward()

    return step


def _hiercon(name: str, labels: str, prototypes: bool = False, **options: object) -> Runner:
    def runner(case: Case) -> Callable[[], None]:
        import hiercon.losses as losses

        sizes = {"num_labels": case.num_labels, "embedding_dim": DIM} if prototypes else {}
        loss = getattr(losses, name)(**sizes, **options)
        targets = case.multi_hot() if labels == "multi_hot" else case.class_ids()
        return _backward(loss, case.embeddings(), targets)

    return runner


def _himulcone(case: Case) -> Callable[[], None]:
    from hiercon.losses import HiMulConELoss

    fine = case.class_ids()
    paths = torch.stack([fine % max(1, case.num_labels // 10), fine, torch.arange(case.batch)], dim=1)
    return _backward(HiMulConELoss(), case.embeddings(), paths)


def _ranked(case: Case) -> Callable[[], None]:
    from hiercon.losses import RankedContrastiveLoss

    groups = torch.arange(case.num_labels) % max(1, case.num_labels // 10)
    similarity = torch.where(groups[:, None] == groups[None, :], 0.75, 0.0).fill_diagonal_(1.0)
    return _backward(RankedContrastiveLoss(similarity=similarity), case.embeddings(), case.class_ids())


def _hcsc(case: Case) -> Callable[[], None]:
    from hiercon.losses import HCSCLoss

    generator = torch.Generator().manual_seed(case.seed + 3)
    coarse = max(2, case.num_labels // 10)
    loss = HCSCLoss(queue_size=0, batch_negatives=True)
    loss.set_prototypes(
        [
            torch.randn(case.num_labels, DIM, generator=generator),
            torch.randn(coarse, DIM, generator=generator),
        ],
        [torch.full((case.num_labels,), 0.2), torch.full((coarse,), 0.2)],
        [torch.arange(case.num_labels) % coarse],
    )
    fine = case.class_ids()[: case.batch // 2]
    embeddings = case.embeddings().reshape(case.batch // 2, 2, DIM)
    return _backward(loss, embeddings, torch.stack([fine, fine % coarse], dim=1))


def _pml_supcon(case: Case) -> Callable[[], None]:
    from pytorch_metric_learning.losses import SupConLoss

    return _backward(SupConLoss(temperature=0.1), case.embeddings(), case.class_ids())


def _loop(reference: str, labels: str, prototypes: bool = False) -> Runner:
    def runner(case: Case) -> Callable[[], None]:
        sys.path.insert(0, str(REPO_ROOT / "tests"))
        import reference_losses

        function = getattr(reference_losses, reference)
        targets = case.multi_hot() if labels == "multi_hot" else case.class_ids()
        extra = [torch.randn(case.num_labels, DIM)] if prototypes else []
        return _backward(function, case.embeddings().double(), targets, *extra)

    return runner


LOSSES: dict[str, Runner] = {
    "SupConLoss": _hiercon("SupConLoss", "class_ids"),
    "SupConLoss(multi-hot, any)": _hiercon("SupConLoss", "multi_hot", positives="any"),
    "JaccardSupConLoss": _hiercon("JaccardSupConLoss", "multi_hot"),
    "MulSupConLoss": _hiercon("MulSupConLoss", "multi_hot"),
    "AbaloneLoss": _hiercon("AbaloneLoss", "multi_hot", prototypes=True),
    "RegLoss": _hiercon("RegLoss", "multi_hot", prototypes=True),
    "PrototypeLoss": _hiercon("PrototypeLoss", "multi_hot", prototypes=True),
    "HiMulConELoss": _himulcone,
    "ClInfoNCELoss": _hiercon("ClInfoNCELoss", "class_ids"),
    "HCSCLoss": _hcsc,
    "RankedContrastiveLoss": _ranked,
}

LOOPS: dict[str, Runner] = {
    "SupConLoss": _loop("supcon_reference", "class_ids"),
    "JaccardSupConLoss": _loop("jaccard_supcon_reference", "multi_hot"),
    "MulSupConLoss": _loop("mulsupcon_reference", "multi_hot"),
    "AbaloneLoss": _loop("abalone_reference", "multi_hot", prototypes=True),
    "RegLoss": _loop("reg_reference", "multi_hot", prototypes=True),
    "PrototypeLoss": _loop("prototype_reference", "multi_hot", prototypes=True),
}


def _measure_in_child(runner: Runner, case: Case, repeats: int, threads: int, pipe) -> None:
    try:
        torch.set_num_threads(threads)
        step = runner(case)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if repeats > 1:
            step()  # warm-up, counted in the peak
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        pipe.send({"seconds": min(times), "peak_mib": max(peak_kib, 0) / 1024})
    except Exception as error:  # reported in the table as "failed"
        pipe.send({"error": f"{type(error).__name__}: {error}"[:200]})


def measure(runner: Runner, case: Case, repeats: int, threads: int, timeout: float) -> dict[str, object]:
    """Best seconds and peak MiB of one forward + backward, in a forked child process."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_measure_in_child, args=(runner, case, repeats, threads, sender))
    child.start()
    result = receiver.recv() if receiver.poll(timeout) else {"error": f"timed out after {timeout:.0f} s"}
    child.join(5)
    if child.is_alive():
        child.kill()
    return result


def importable(name: str) -> bool:
    import hiercon.losses as losses

    try:
        getattr(losses, name)
    except (ImportError, AttributeError):
        return False
    return True


def pml_available() -> bool:
    try:
        import pytorch_metric_learning  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Row:
    loss: str
    batch: int
    num_labels: int
    seconds: float | None
    peak_mib: float | None
    ratio_to_pml: float | None
    note: str = ""


def run(
    batches: list[int],
    label_counts: list[int],
    skip: set[tuple[int, int]],
    repeats: int,
    threads: int,
    timeout: float,
    large_batch: int,
) -> tuple[list[Row], list[Row]]:
    names = [name for name in LOSSES if importable(name.split("(")[0])]
    rows: list[Row] = []
    for batch in batches:
        for num_labels in label_counts:
            if (batch, num_labels) in skip:
                continue
            case = Case(batch, num_labels)
            passes = 1 if batch >= large_batch else repeats
            pml = measure(_pml_supcon, case, passes, threads, timeout) if pml_available() else {}
            pml_seconds = pml.get("seconds")
            rows.append(_row("pml SupConLoss", case, pml, None))
            for name in names:
                result = measure(LOSSES[name], case, passes, threads, timeout)
                ratio = result["seconds"] / pml_seconds if pml_seconds and "seconds" in result else None
                rows.append(_row(name, case, result, ratio))
                print(*_cells(rows[-1]), sep="  ", flush=True)
    loop_rows = []
    loop_case = Case(LOOP_BATCH, LOOP_LABELS)
    for name, loop in LOOPS.items():
        fast = measure(LOSSES[name], loop_case, repeats, threads, timeout)
        slow = measure(loop, loop_case, 1, threads, timeout * 4)
        ratio = slow["seconds"] / fast["seconds"] if "seconds" in slow and "seconds" in fast else None
        loop_rows.append(_row(name, loop_case, fast, None))
        loop_rows.append(_row(f"{name} (Python loop)", loop_case, slow, ratio))
        print(*_cells(loop_rows[-1]), sep="  ", flush=True)
    return rows, loop_rows


def _row(name: str, case: Case, result: dict[str, object], ratio: float | None) -> Row:
    return Row(
        loss=name,
        batch=case.batch,
        num_labels=case.num_labels,
        seconds=result.get("seconds"),
        peak_mib=result.get("peak_mib"),
        ratio_to_pml=ratio,
        note=str(result.get("error", "")),
    )


def _cells(row: Row) -> list[object]:
    seconds = "failed" if row.seconds is None else f"{row.seconds * 1000:.1f}"
    peak = "" if row.peak_mib is None else f"{row.peak_mib:.0f}"
    ratio = "" if row.ratio_to_pml is None else f"{row.ratio_to_pml:.2f}"
    return [row.loss, row.batch, row.num_labels, seconds, peak, ratio, row.note]


def markdown(rows: list[Row], loop_rows: list[Row], header: str) -> str:
    from hiercon.metrics.report import markdown_table

    columns = ["loss", "batch", "labels", "ms (fwd+bwd)", "peak MiB"]
    parts = [
        header,
        markdown_table([*columns, "x pml SupConLoss", "note"], [_cells(row) for row in rows]),
        f"Vectorised loss against the plain Python-loop implementation of the same equation "
        f"(`tests/reference_losses.py`, float64) at batch {LOOP_BATCH}, {LOOP_LABELS} labels; for the "
        "loop rows the ratio column is loop time / vectorised time.",
        markdown_table([*columns, "loop / vectorised", "note"], [_cells(row) for row in loop_rows]),
    ]
    return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (seconds)")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--labels", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument(
        "--skip",
        nargs="*",
        default=["4096x100", "4096x1000"],
        help="BATCHxLABELS sizes to leave out (default 4096x100 4096x1000, to stay near 10 minutes)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--large-batch",
        type=int,
        default=4096,
        help="from this batch on, time a single pass without warm-up (keeps the full run near 10 minutes)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per measurement")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per measurement")
    parser.add_argument("--output", type=Path, help="write the rows as JSON")
    parser.add_argument("--markdown", type=Path, help="write the tables as Markdown")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.labels, args.repeats, args.skip = [64, 128], [10, 50], 2, []
    skip = {tuple(int(n) for n in item.split("x")) for item in args.skip}
    header = (
        f"Losses, forward + backward, dim {DIM}, CPU ({platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s), torch {torch.__version__}); best of {args.repeats} passes after one "
        f"warm-up, a single pass from batch {args.large_batch}. Left out: {', '.join(args.skip) or 'nothing'}."
    )
    print(header)
    rows, loop_rows = run(
        args.batches, args.labels, skip, args.repeats, args.threads, args.timeout, args.large_batch
    )
    if args.output:
        payload = {
            "header": header,
            "rows": [asdict(r) for r in rows],
            "loops": [asdict(r) for r in loop_rows],
        }
        args.output.write_text(json.dumps(payload, indent=2))
    table = markdown(rows, loop_rows, header)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
