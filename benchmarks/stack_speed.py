"""Retraining K models as one stack against one after another, side by side.

For each preset and each K, the benchmark draws K random removal masks (each
leaves out about 1% of the training triples; seeded), retrains the K members
together with ``train_stack`` (``--repeats`` times; the median counts), and
retrains the first three masks one model at a time with ``retrain_without``
(the sequential baseline). The sequential time of K models is extrapolated: K
times the mean time per model of those three.

Both ways train the same number of epochs, one by default: the paper preset's
10 epochs at batch size 1 are 15,920 steps per model on Nations, and the
speed-up does not depend on the number of epochs. Target: at least 50x for
the paper preset on Nations at K = 1000.

    python -m benchmarks.stack_speed [--quick] [--epochs 1] [--repeats 3]
                                     [--presets paper default]
"""

import argparse
import os
import statistics
import time

import torch

from gr_core.config import PRESETS
from gr_core.data import load_dataset
from gr_core.stack import DEFAULT_MEMORY_BUDGET, group_size, train_stack
from gr_core.verify import retrain_without

SIZES = (10, 100, 1000)
QUICK_SIZES = (10, 100)
SEQUENTIAL_MODELS = 3


def removal_masks(members: int, num_train: int, fraction: float, seed: int) -> torch.Tensor:
    """Return (members, num_train) bool: each triple removed with probability ``fraction``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(members, num_train, generator=generator) < fraction


def stack_groups(dataset, config, members: int) -> int:
    """Return how many groups ``train_stack`` splits ``members`` into."""
    group = group_size(dataset, config, members, DEFAULT_MEMORY_BUDGET)
    return -(-members // group)


def time_stack(dataset, config, masks: torch.Tensor, epochs: int) -> float:
    """Return the seconds ``train_stack`` takes to retrain one member per mask."""
    started = time.perf_counter()
    train_stack(dataset, config, masks, epochs)
    return time.perf_counter() - started


def time_sequential(dataset, config, masks: torch.Tensor, epochs: int) -> float:
    """Return the mean seconds per model of ``retrain_without``, one model per mask."""
    started = time.perf_counter()
    for mask in masks:
        retrain_without(dataset, config, mask.nonzero().flatten(), epochs)
    return (time.perf_counter() - started) / len(masks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"K in {QUICK_SIZES} only")
    parser.add_argument("--epochs", type=int, default=1, help="epochs, both ways (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="stack timings per row")
    parser.add_argument("--presets", nargs="+", default=["paper", "default"], choices=PRESETS)
    parser.add_argument("--fraction", type=float, default=0.01, help="share of triples removed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the removal masks")
    args = parser.parse_args()
    sizes = QUICK_SIZES if args.quick else SIZES

    dataset = load_dataset("nations")
    print(
        f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, "
        f"OMP_WAIT_POLICY = {os.environ.get('OMP_WAIT_POLICY')!r}, {os.cpu_count()} CPUs"
    )
    print(
        f"nations: {len(dataset.train):,} training triples; {args.epochs} epoch(s) both ways; "
        f"masks remove ~{args.fraction:.0%} of the triples (seed {args.seed})"
    )
    print(
        f"sequential: retrain_without timed on {SEQUENTIAL_MODELS} models per row, "
        "extrapolated to K models (K x seconds per model)"
    )
    print(
        f"{'preset':<8} {'K':>5} {'groups':>6} {'steps':>6} {'stack s':>9} {'range s':>13} "
        f"{'models/s':>9} {'seq s/model':>12} {'seq s (K, extrap.)':>19} {'speed-up':>9}"
    )
    for preset_name in args.presets:
        config = PRESETS[preset_name].replace(ledger="off")
        steps = args.epochs * -(-len(dataset.train) // config.batch_size)
        warm_up = removal_masks(2, len(dataset.train), args.fraction, args.seed)
        time_stack(dataset, config, warm_up, args.epochs)  # untimed: first-call costs
        time_sequential(dataset, config, warm_up[:1], args.epochs)
        for members in sizes:
            masks = removal_masks(members, len(dataset.train), args.fraction, args.seed)
            per_model = time_sequential(dataset, config, masks[:SEQUENTIAL_MODELS], args.epochs)
            times = [time_stack(dataset, config, masks, args.epochs) for _ in range(args.repeats)]
            stack, spread = statistics.median(times), f"{min(times):.3f}-{max(times):.3f}"
            groups, sequential = stack_groups(dataset, config, members), members * per_model
            print(
                f"{preset_name:<8} {members:>5} {groups:>6} {steps:>6,} {stack:>9.3f} "
                f"{spread:>13} {members / stack:>9.1f} {per_model:>12.4f} "
                f"{sequential:>19.2f} {sequential / stack:>8.1f}x"
            )
    print(
        f"stack s: median of {args.repeats}; steps: optimizer steps per model ({args.epochs} "
        "epoch(s));\nthe paper preset trains 10 epochs, the default preset 50: scale the "
        "times, not the speed-up"
    )


if __name__ == "__main__":
    main()
