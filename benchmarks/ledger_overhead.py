"""Training time with the rollback ledger on against off, measured side by side.

Each case trains the same settings with ``ledger="gradient"`` and
``ledger="off"`` in alternation, several times, and prints the ratio of the
median times of the optimizer steps (target: at most 1.15) and the throughput
in training triples per second. The FB15k-237 case (read from ``--fb15k``
when that folder exists; the data set is not part of the project) runs a fixed
number of steps of DistMult at width 200, batch 512, softmax over all 14,505
entities and Adam, and extrapolates the time of one epoch with the ledger on
(target: at most 60 s on two CPU cores).

    python -m benchmarks.ledger_overhead [--repeats 5] [--fb15k FOLDER]
"""

import argparse
import statistics
import time
import warnings
from pathlib import Path

import torch

from gr_core.config import DEFAULT, PAPER
from gr_core.data import DatasetWarning, load_dataset
from gr_core.training import Trainer

SHARED_FB15K = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fb15k-237"
FB15K_STEPS = 60
FB15K = DEFAULT.replace(dim=200, batch_size=512, learning_rate=0.005, epochs=1)


def time_training(dataset, config, max_steps: int | None = None) -> tuple[float, int]:
    """Return the seconds spent in optimizer steps and the triples trained on."""
    trainer = Trainer(dataset.train, dataset.num_entities, dataset.num_relations, config)
    batches = [rows for _ in range(config.epochs) for rows in trainer.epoch_batches()]
    batches = batches[:max_steps]
    started = time.perf_counter()
    for rows in batches:
        trainer.step(rows)
    return time.perf_counter() - started, sum(len(rows) for rows in batches)


def cases(fb15k: Path):
    """Yield (label, preset name, data set, config, step limit) for each measured case."""
    yield "nations", "paper", load_dataset("nations"), PAPER, None
    yield "umls", "default", load_dataset("umls"), DEFAULT, None
    if (fb15k / "train.txt").is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetWarning)  # 37 unseen valid/test triples
            dataset = load_dataset(fb15k)
        yield "fb15k-237", "w200-b512", dataset, FB15K, FB15K_STEPS
    else:
        print(f"(no FB15k-237 case: {fb15k} not found)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fb15k", type=Path, default=SHARED_FB15K)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{'data set':<9} {'preset':<9} {'ledger off':>11} {'ledger on':>10} {'ratio':>6} "
        f"{'triples/s on':>13}"
    )
    for name, preset_name, dataset, config, max_steps in cases(args.fb15k):
        times, triples = {"gradient": [], "off": []}, 0
        for _ in range(args.repeats):
            for mode in times:  # alternate, so drifts in machine load hit both
                seconds, triples = time_training(dataset, config.replace(ledger=mode), max_steps)
                times[mode].append(seconds)
        on, off = statistics.median(times["gradient"]), statistics.median(times["off"])
        print(
            f"{name:<9} {preset_name:<9} {off:>10.3f}s {on:>9.3f}s {on / off:>6.3f} "
            f"{triples / on:>13,.0f}"
        )
        if max_steps is not None:
            steps = -(-len(dataset.train) // config.batch_size)
            epoch = on / max_steps * steps
            print(f"{'':<9} one epoch ({steps} steps) with the ledger: {epoch:.1f} s")


if __name__ == "__main__":
    main()
