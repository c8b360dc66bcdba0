"""Shared memory between the parent and its workers, with nothing to unlink.

Segments are anonymous memory files (memfd): a worker maps one by opening
/proc/<parent pid>/fd/<fd>. Nothing ever appears in /dev/shm, so no run, however it ends
(SIGKILL included), leaves a segment behind: the kernel frees it with its last mapping.

A decoder fills a schedule's columns in place (`Column`: a segment that grows while it is
written), so sharing them with the workers later copies nothing (`share_array`).
"""
from __future__ import annotations

import mmap
import os
import weakref
from dataclasses import dataclass

import numpy as np

from replayer.errors import RunError


@dataclass(frozen=True)
class SegmentRef:
    """What a worker needs to map a segment (picklable)."""
    pid: int
    fd: int
    nbytes: int
    name: str


class Segment:
    def __init__(self, name: str, nbytes: int):
        self.name = name
        self.nbytes = max(int(nbytes), 1)
        try:
            self.fd = os.memfd_create(f"replayer-{name}", os.MFD_CLOEXEC)
        except OSError as exc:
            raise RunError(f"cannot create shared memory for {name} ({exc.strerror})") from None
        try:
            os.ftruncate(self.fd, self.nbytes)
            self.map = mmap.mmap(self.fd, self.nbytes)
        except OSError as exc:
            os.close(self.fd)
            raise RunError(f"cannot allocate {self.nbytes} bytes of shared memory for {name} "
                           f"({exc.strerror}); check memory limits (ulimit -f, -v)") from None
        self.ref = SegmentRef(os.getpid(), self.fd, self.nbytes, name)
        # The descriptor lives as long as the segment (closed at the latest when it is freed);
        # arrays on `map` stay valid without it (mmap holds its own).
        self._close_fd = weakref.finalize(self, os.close, self.fd)

    def resize(self, nbytes: int) -> None:
        """Grow or shrink the segment; no array on `map` may exist meanwhile (BufferError)."""
        nbytes = max(int(nbytes), 1)
        try:
            self.map.resize(nbytes)
        except OSError as exc:
            raise RunError(f"cannot allocate {nbytes} bytes of shared memory for {self.name} "
                           f"({exc.strerror}); check memory limits (ulimit -f, -v)") from None
        self.nbytes = nbytes
        self.ref = SegmentRef(os.getpid(), self.fd, nbytes, self.name)

    def array(self, dtype, count: int | None = None, offset: int = 0) -> np.ndarray:
        return np.frombuffer(self.map, dtype=dtype, count=-1 if count is None else count, offset=offset)

    def close(self) -> None:
        """Close the descriptor (workers can no longer attach); arrays on `map` stay valid."""
        if self.fd >= 0:
            self._close_fd()
            self.fd = -1

    def discard(self) -> None:
        """Close the descriptor and unmap: for a segment no array was made from."""
        self.close()
        try:
            self.map.close()
        except BufferError:
            pass        # an array on it still exists: the mapping goes with the last one


def attach(ref: SegmentRef) -> mmap.mmap:
    fd = os.open(f"/proc/{ref.pid}/fd/{ref.fd}", os.O_RDWR)
    try:
        return mmap.mmap(fd, ref.nbytes)
    finally:
        os.close(fd)


class Column:
    """A column filled row by row, in place, in a segment that grows as it is written (by
    doubling; the pages never written cost nothing). `finish` trims it and gives the array,
    which `share_array` then shares as it is."""

    def __init__(self, name: str, dtype, capacity: int = 1 << 10):
        self.dtype = np.dtype(dtype)
        self.capacity = max(int(capacity), 1)
        self.segment = Segment(name, self.capacity * self.dtype.itemsize)

    def write(self, start: int, values) -> None:
        """Store values at rows start, start + 1, ..."""
        stop = start + len(values)
        if stop > self.capacity:
            self.capacity = max(stop, 2 * self.capacity)
            self.segment.resize(self.capacity * self.dtype.itemsize)
        view = np.frombuffer(self.segment.map, self.dtype, count=stop - start,
                             offset=start * self.dtype.itemsize)
        view[...] = values

    def finish(self, rows: int) -> np.ndarray:
        """The first `rows` rows as an array on the segment (trimmed to them)."""
        self.segment.resize(rows * self.dtype.itemsize)
        array = np.frombuffer(self.segment.map, self.dtype, count=rows)
        for addr in [a for a, r in _filled.items() if r() is None]:
            del _filled[addr]
        _filled[array.__array_interface__["data"][0]] = weakref.ref(self.segment)
        return array

    def discard(self) -> None:
        self.segment.discard()


# Address of a finished column's first row -> its segment (while the segment lives).
_filled: dict[int, weakref.ref] = {}


def _segment_of(array: np.ndarray) -> Segment | None:
    ref = _filled.get(array.__array_interface__["data"][0])
    seg = ref() if ref is not None else None
    if seg is None or seg.fd < 0 or not array.flags.c_contiguous or array.nbytes > seg.nbytes:
        return None
    return seg


def share_array(name: str, array: np.ndarray) -> tuple[Segment, np.ndarray]:
    """A segment holding the array and the shared view: the array's own segment when it is a
    finished Column (or a prefix of one), else a new segment it is copied into."""
    seg = _segment_of(array)
    if seg is not None:
        return seg, array
    seg = Segment(name, array.nbytes)
    view = seg.array(array.dtype, count=array.size)
    view[...] = array.ravel()
    return seg, view
