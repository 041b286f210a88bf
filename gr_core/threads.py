"""Run small training work on one CPU thread.

A training step on Nations or UMLS is hundreds of tiny operations. Splitting
them over torch's worker threads gains nothing (measured on two cores: one
thread trains the default preset as fast or faster), and when another busy
process shares the cores, threads waiting for each other turn a 0.3 s
training into tens of seconds. Large problems (FB15k-237's softmax over 14,505
entities) keep every thread. Passive OpenMP waiting fixes the second problem
but made idle training five times slower, so it is not used.

``torch.set_num_threads`` is process-wide: while small work runs, other
threads of the process (another dashboard session) also run on one thread.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

# Multiply-adds per step below which one thread is used.
SMALL_WORK = 1 << 22


@contextmanager
def threads_for(work: int) -> Iterator[None]:
    """Use one thread inside the block when ``work`` (multiply-adds per step) is small."""
    previous = torch.get_num_threads()
    if work >= SMALL_WORK or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def step_work(batch_size: int, num_entities: int, width: int) -> int:
    """Return the multiply-adds of one training step's score matrix."""
    return batch_size * num_entities * width
