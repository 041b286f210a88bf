"""Training time with the rollback ledger on against off, measured side by side.

Each case trains the same settings with ``ledger="gradient"`` and
``ledger="off"`` in alternation, several times, and prints the ratio of the
median times (target: at most 1.15) and the throughput in training triples
per second.

    python -m benchmarks.ledger_overhead [--repeats 5]
"""

import argparse
import statistics
import time

import torch

from gr_core.config import DEFAULT, PAPER
from gr_core.data import load_dataset
from gr_core.training import Trainer

CASES = [
    ("nations", "paper", PAPER),
    ("umls", "default", DEFAULT),
]


def time_training(dataset, config) -> float:
    """Return the seconds spent in optimizer steps (evaluation excluded)."""
    trainer = Trainer(dataset.train, dataset.num_entities, dataset.num_relations, config)
    started = time.perf_counter()
    for _ in range(config.epochs):
        for rows in trainer.epoch_batches():
            trainer.step(rows)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{'data set':<9} {'preset':<8} {'ledger off':>11} {'ledger on':>10} {'ratio':>6} "
        f"{'triples/s on':>13}"
    )
    for name, preset_name, config in CASES:
        dataset = load_dataset(name)
        times = {"gradient": [], "off": []}
        for _ in range(args.repeats):
            for mode in times:  # alternate, so drifts in machine load hit both
                times[mode].append(time_training(dataset, config.replace(ledger=mode)))
        on, off = statistics.median(times["gradient"]), statistics.median(times["off"])
        throughput = len(dataset.train) * config.epochs / on
        print(
            f"{name:<9} {preset_name:<8} {off:>10.3f}s {on:>9.3f}s {on / off:>6.3f} "
            f"{throughput:>13,.0f}"
        )


if __name__ == "__main__":
    main()
