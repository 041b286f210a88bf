"""Training throughput (triples per second) of both presets, both models.

Reports end-to-end ``train`` wall time (final evaluation included) and the
rate of optimizer steps alone, with the ledger on, for each data set.

    python -m benchmarks.throughput [--datasets nations umls]
"""

import argparse

import torch

from benchmarks.ledger_overhead import time_training
from gr_core.config import PRESETS
from gr_core.data import load_dataset
from gr_core.training import train


def step_rate(dataset, config) -> float:
    """Return training triples per second over the optimizer steps alone."""
    seconds, triples = time_training(dataset, config)
    return triples / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["nations", "umls"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{'data set':<9} {'preset':<8} {'model':<9} {'train s':>8} {'test mrr':>9} "
        f"{'triples/s':>10}"
    )
    for name in args.datasets:
        dataset = load_dataset(name)
        for preset_name, preset in PRESETS.items():
            for model in ("distmult", "complex"):
                config = preset.replace(model=model)
                result = train(dataset, config)
                rate = step_rate(dataset, config)
                print(
                    f"{name:<9} {preset_name:<8} {model:<9} {result.seconds:>8.2f} "
                    f"{result.metrics['test']['mrr']:>9.3f} {rate:>10,.0f}"
                )


if __name__ == "__main__":
    main()
