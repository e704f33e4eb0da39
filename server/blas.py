"""The server's numerical work on one BLAS thread.

The optimizers' numpy (the GP surrogate's kernels and Cholesky solves) runs in the server's
refill and spec-validation threads, beside the threads that serve claims. numpy's OpenBLAS
starts one thread per core; at these sizes (a few hundred points) a second thread gains no wall
time, doubles the CPU a fit burns and, on a busy box, waits for cores the request threads need
(bench/README.md, "BLAS threads"). threadpoolctl reaches whichever BLAS numpy loaded.
"""

from __future__ import annotations

import threading

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no py.typed

_limited = threading.local()


def one_blas_thread() -> None:
    """Limit BLAS to one thread: once per calling thread, before its first optimizer call.

    Per thread, because the scope of the limit depends on the BLAS: with OpenMP threading it is
    the calling thread's; with OpenBLAS's own threads (numpy's wheels) it is process-wide, and
    threadpoolctl lets only the first thread that sets it change it (later calls change
    nothing). Never a `with` block around each call: its exit would restore the old limit under
    another thread's fit."""
    if getattr(_limited, "done", False):
        return
    threadpool_limits(limits=1, user_api="blas")
    _limited.done = True
