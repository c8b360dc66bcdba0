"""Shared memory segments (replayer.run.shm), in one process: sizes, views that share the same
pages, growing and trimming, closing the descriptor while arrays live on, columns filled in
place and shared without a copy, and nothing ever left in /dev/shm. (Mapping a segment from
another process is what every run does: tests/e2e.)"""
from __future__ import annotations

import gc
import os
import resource
import signal

import numpy as np
import pytest

from replayer.errors import RunError
from replayer.run import shm


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _dev_shm() -> set[str]:
    return set(os.listdir("/dev/shm"))


def test_a_segment_is_an_anonymous_memory_file_of_its_size():
    """A segment is a memfd named after it, of the size asked (at least one byte); its ref
    says how to map it (this process's pid, the descriptor, the size, the name)."""
    seg = shm.Segment("sizes", 4096 * 3 + 1)
    try:
        assert os.fstat(seg.fd).st_size == seg.nbytes == 4096 * 3 + 1 == len(seg.map)
        assert os.readlink(f"/proc/self/fd/{seg.fd}").startswith("/memfd:replayer-sizes")
        assert seg.ref == shm.SegmentRef(os.getpid(), seg.fd, seg.nbytes, "sizes")
        assert shm.Segment("empty", 0).nbytes == 1
    finally:
        seg.discard()


def test_views_and_attached_mappings_share_the_pages():
    """Arrays made on a segment, and a mapping attached through its ref (as a worker does),
    all see what any of them writes."""
    seg = shm.Segment("views", 8 * 16)
    a = seg.array(np.int64)
    b = seg.array(np.int64, count=4, offset=8 * 12)
    attached = shm.attach(seg.ref)
    c = np.frombuffer(attached, np.int64)
    a[12] = 7
    c[15] = 9
    assert b.tolist() == [7, 0, 0, 9] and a[15] == 9
    del a, b, c
    attached.close()
    seg.discard()


def test_resize_grows_and_trims_and_refuses_while_arrays_live():
    """A segment grows (new bytes are zero) and shrinks, its ref following; while an array is
    made on it, it cannot move (BufferError)."""
    seg = shm.Segment("resize", 16)
    seg.array(np.uint8)[:] = 1
    seg.resize(4096)
    grown = seg.array(np.uint8)
    assert seg.ref.nbytes == 4096 and grown[:16].tolist() == [1] * 16 and not grown[16:].any()
    with pytest.raises(BufferError):
        seg.resize(8)
    del grown
    seg.resize(8)
    assert seg.ref.nbytes == 8 == os.fstat(seg.fd).st_size
    seg.discard()


def test_close_ends_attaching_but_arrays_stay_valid():
    """close() closes the descriptor (once, however often called): nobody can attach any
    more, while arrays on the segment keep working; discard() with an array alive leaves
    the mapping to that array."""
    seg = shm.Segment("close", 64)
    view = seg.array(np.int32)
    fd, ref = seg.fd, seg.ref
    seg.close()
    seg.close()
    assert seg.fd == -1 and not _fd_open(fd)
    with pytest.raises(OSError):
        shm.attach(ref)
    view[:] = 5
    seg.discard()
    assert view.sum() == 5 * 16


def test_the_descriptor_goes_with_the_segment():
    """A segment dropped without close() closes its descriptor when it is freed."""
    seg = shm.Segment("dropped", 64)
    fd = seg.fd
    del seg
    gc.collect()
    assert not _fd_open(fd)


def test_nothing_is_left_in_dev_shm():
    """Segments never appear in /dev/shm, whether discarded or only dropped."""
    before = _dev_shm()
    segments = [shm.Segment(f"leftover-{k}", 1 << 16) for k in range(4)]
    during = _dev_shm()
    segments[0].discard()
    del segments
    gc.collect()
    assert during == before and _dev_shm() == before


def test_a_column_grows_while_written_and_is_shared_as_it_is():
    """A Column takes rows in pieces, growing its segment by doubling; finish() trims it to the
    rows written and gives an array on the segment, which share_array then hands over without
    a copy (a prefix of it too); any other array is copied into a new segment."""
    col = shm.Column("t_ns", np.int64, capacity=4)
    col.write(0, np.arange(3))
    col.write(3, np.arange(3, 11))
    assert col.capacity == 11 and col.segment.nbytes == 11 * 8
    col.write(11, [11, 12])
    assert col.capacity == 22
    array = col.finish(13)
    assert array.tolist() == list(range(13)) and col.segment.nbytes == 13 * 8
    seg, view = shm.share_array("t_ns", array)
    assert seg is col.segment and view is array
    seg, view = shm.share_array("t_ns", array[:5])
    assert seg is col.segment and view.tolist() == list(range(5))
    for other in (array[2:], array[::2], np.arange(4)):
        seg, view = shm.share_array("copy", other)
        assert seg is not col.segment and view.tolist() == other.tolist()
        assert np.shares_memory(view, seg.array(other.dtype))
    col.segment.close()
    seg, view = shm.share_array("after-close", array)      # workers could not attach to it
    assert seg is not col.segment and view.tolist() == array.tolist()


def test_a_segment_past_the_memory_limits_is_a_run_error():
    """Shared memory the system refuses (here: past the file size limit, as `ulimit -f`) is a
    RunError naming the segment and the limit to check, not an OSError."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, old_limit[1]))
    try:
        with pytest.raises(RunError, match=r"for too-big .*ulimit -f"):
            shm.Segment("too-big", 1 << 21)
        seg = shm.Segment("grows", 1 << 10)
        with pytest.raises(RunError, match=r"for grows .*ulimit -f"):
            seg.resize(1 << 21)
        seg.discard()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
