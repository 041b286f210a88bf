"""Small work runs on one thread; the thread count comes back afterwards."""

import pytest
import torch

from gr_core.threads import SMALL_WORK, step_work, threads_for


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_small_work_uses_one_thread_and_restores(two_threads):
    with threads_for(step_work(128, 14, 100)):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_large_work_keeps_the_threads(two_threads):
    assert step_work(512, 14_505, 200) >= SMALL_WORK
    with threads_for(step_work(512, 14_505, 200)):
        assert torch.get_num_threads() == 2


def test_the_count_comes_back_after_an_error(two_threads):
    with pytest.raises(RuntimeError), threads_for(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
