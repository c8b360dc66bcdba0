# replayer._pacer's declarations, one part per file (as uvloop's loop.pxd): what the other
# Cython modules (replayer._h1, replayer._curl) cimport to write ring rows without the GIL.
cimport cython

include "pacer/errors.pxd"
include "pacer/blocks.pxd"
include "pacer/ring.pxd"
include "pacer/content.pxd"
include "pacer/transport.pxd"
include "pacer/null_transport.pxd"
include "pacer/pacer.pxd"
include "pacer/users.pxd"
