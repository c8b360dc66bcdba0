"""Shared memory between the parent and its workers, with nothing to unlink.

Segments are anonymous memory files (memfd): a worker maps one by opening
/proc/<parent pid>/fd/<fd>. Nothing ever appears in /dev/shm, so no run, however it ends
(SIGKILL included), leaves a segment behind: the kernel frees it with its last mapping.
"""
from __future__ import annotations

import mmap
import os
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

    def array(self, dtype, count: int | None = None, offset: int = 0) -> np.ndarray:
        return np.frombuffer(self.map, dtype=dtype, count=-1 if count is None else count, offset=offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def attach(ref: SegmentRef) -> mmap.mmap:
    fd = os.open(f"/proc/{ref.pid}/fd/{ref.fd}", os.O_RDWR)
    try:
        return mmap.mmap(fd, ref.nbytes)
    finally:
        os.close(fd)


def share_array(name: str, array: np.ndarray) -> tuple[Segment, np.ndarray]:
    """Copy an array into a new segment; return the segment and the shared view."""
    seg = Segment(name, array.nbytes)
    view = seg.array(array.dtype, count=array.size)
    view[...] = array.ravel()
    return seg, view
