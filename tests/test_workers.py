"""ordered_map: work spread over several resources (a model per device) comes back in input order, each resource
used by one thread at a time, with a bounded read-ahead, and a failure surfaces where its item is yielded."""

from __future__ import annotations

import threading
import time

import pytest

from mdlm_bio.cli import main
from mdlm_bio.workers import ordered_map


def test_results_come_in_input_order_with_each_resource_used_by_one_thread_at_a_time():
    busy: dict[str, int] = {"a": 0, "b": 0, "c": 0}
    lock, seen = threading.Lock(), []

    def work(resource: str, item: int) -> tuple[int, str]:
        with lock:
            busy[resource] += 1
            seen.append(busy[resource])
        time.sleep(0.001 * ((item * 7) % 5))  # uneven durations finish out of order
        with lock:
            busy[resource] -= 1
        return item * item, resource

    results = list(ordered_map(work, ["a", "b", "c"], range(40)))
    assert [value for value, _ in results] == [item * item for item in range(40)]
    assert max(seen) == 1 and {resource for _, resource in results} == {"a", "b", "c"}


def test_only_a_few_items_per_resource_are_read_ahead():
    read = []

    def items():
        for item in range(100):
            read.append(item)
            yield item

    mapped = ordered_map(lambda resource, item: item, ["a", "b"], items(), ahead=2)
    assert next(mapped) == 0 and len(read) == 4  # 2 resources x 2 ahead
    assert list(mapped) == list(range(1, 100))


def test_one_resource_runs_in_the_calling_thread():
    threads = set(ordered_map(lambda resource, item: threading.get_ident(), ["only"], range(5)))
    assert threads == {threading.get_ident()}


def test_a_failure_surfaces_in_order():
    def work(resource: str, item: int) -> int:
        if item == 5:
            raise ValueError("item 5 is bad")
        return item

    mapped = ordered_map(work, ["a", "b"], range(20))
    assert [next(mapped) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="item 5 is bad"):
        next(mapped)


def test_a_device_list_with_an_empty_entry_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["score-variants", "x.vcf", "--reference", "r.fa", "--ckpt", "run", "--device", "cpu,"])
    assert exit_info.value.code == 2
    assert "argument --device: 'cpu,' has an empty entry; list devices as cuda:0,cuda:1" in capsys.readouterr().err
