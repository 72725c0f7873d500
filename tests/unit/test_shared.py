"""Memory and locks shared by forked processes (``monkey_py.shared``)."""

from __future__ import annotations

import gc
import os
import warnings

import pytest

from forks import in_children
from monkey_py.shared import ProcessLock, SharedMemory


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_shared_memory_is_zeroed_int64_slots():
    shared = SharedMemory(4)
    assert list(shared.slots) == [0, 0, 0, 0]
    assert shared.size == 32
    shared.slots[3] = 2**63 - 1
    shared.slots[0] = -(2**63)
    with pytest.raises(ValueError):
        shared.slots[1] = 2**63


def test_shared_memory_of_size_rounds_up_to_whole_slots():
    assert SharedMemory.of_size(9).size == 16
    assert SharedMemory.of_size(8).size == 8
    with pytest.raises(ValueError, match="at least one slot"):
        SharedMemory(0)


def test_forked_processes_write_the_same_memory():
    shared = SharedMemory(3)

    def work(index: int) -> None:
        shared.slots[index] = 10 + index

    in_children(work, 2)
    assert list(shared.slots) == [10, 11, 0]


def test_the_lock_excludes_forked_processes():
    shared = SharedMemory(1)

    def work(index: int) -> bool:
        return shared.lock.acquire(blocking=False)

    shared.lock.acquire()
    try:
        assert in_children(work, 1) == [False]
    finally:
        shared.lock.release()
    assert in_children(work, 1) == [True]


def test_a_closed_lock_has_closed_its_file():
    before = open_descriptors()
    lock = ProcessLock()
    assert open_descriptors() == before + 1
    lock.close()
    lock.close()
    assert open_descriptors() == before
    with pytest.raises(ValueError):
        lock.acquire()


def test_closing_shared_memory_closes_its_lock_and_keeps_the_slots():
    before = open_descriptors()
    shared = SharedMemory(2)
    shared.slots[1] = 7
    shared.close()
    shared.close()
    assert open_descriptors() == before
    assert list(shared.slots) == [0, 7]


def test_shared_memory_dropped_unclosed_closes_its_lock_without_a_warning():
    before = open_descriptors()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shared = SharedMemory(1)
        del shared
        gc.collect()
    assert open_descriptors() == before
    assert [warning for warning in caught if warning.category is ResourceWarning] == []
