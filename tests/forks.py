"""Work run in forked children, for tests of memory that processes share."""

from __future__ import annotations

import json
import os
import traceback
from typing import Callable


def in_children(work: Callable[[int], object], count: int) -> list:
    """Run ``work(index)`` in ``count`` forked children started together; their results."""
    go_read, go_write = os.pipe()
    children = []
    for index in range(count):
        out_read, out_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(out_read)
                os.read(go_read, 1)
                with os.fdopen(out_write, "w") as out:
                    json.dump(work(index), out)
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        os.close(out_write)
        children.append((pid, out_read))
    os.write(go_write, b"x" * count)
    os.close(go_read)
    os.close(go_write)
    results = []
    for pid, out_read in children:
        with os.fdopen(out_read) as out:
            text = out.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, f"child {pid} failed"
        results.append(json.loads(text))
    return results
