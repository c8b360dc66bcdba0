"""`cython -a` proof that the send path holds no Python: every line of Pacer.run's send loop
compiles to plain C, except the marked transport seams (where the GIL is held on purpose) and
the `with nogil` blocks (whose only cost is releasing the GIL); and every line of the pacer's
decision and clocks, the libcurl transport's and the native HTTP client's per-request methods,
callbacks and answer parser is plain C.

Each module is annotated as it is built: its .pyx in _ext/replayer/ with the parts it includes
(one concern per file, _ext/replayer/<module>/*.pyx), each part getting its own annotation."""
from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "_ext"

Annotated = dict[Path, tuple[list[str], dict[int, int]]]


def _annotate(tmp_path: Path, module: str) -> Annotated:
    """Per source file of the module (relative to _ext/replayer/: the module's .pyx and each
    part it includes), its lines and the `cython -a` score of each line."""
    src = tmp_path / "_ext"
    shutil.copytree(EXT, src)
    directives = ["-X", "boundscheck=False", "-X", "wraparound=False", "-X",
                  "initializedcheck=False", "-X", "cdivision=True"]
    subprocess.run([sys.executable, "-m", "cython", "-3", "-a", "-I", ".", *directives,
                    "--module-name", f"replayer.{module}", f"replayer/{module}.pyx"],
                   cwd=src, check=True, capture_output=True)
    main = Path(f"{module}.pyx")
    parts = re.findall(r'^include "([^"]+\.pyx)"$', (EXT / "replayer" / main).read_text(), re.M)
    annotated = {}
    for rel in [main, *map(Path, parts)]:
        page = (src / "replayer" / rel).with_suffix(".html").read_text()
        assert f"<title>Cython: {rel.name}</title>" in page      # this file's own annotation
        scores = {int(line): int(score) for score, line in re.findall(
            r'<pre class="cython line score-(\d+)"[^>]*>.<span class="">(\d+)</span>:', page)}
        annotated[rel] = ((EXT / "replayer" / rel).read_text().splitlines(), scores)
    return annotated


def test_send_loop_is_plain_c(tmp_path):
    source, scores = _annotate(tmp_path, "_pacer")[Path("pacer/pacer.pyx")]
    start = next(i for i, l in enumerate(source, 1) if l.strip() == "while i < n:")
    end = next(i for i, l in enumerate(source, 1) if i > start and l.strip() == "if burst:"
               and source[i - 2].strip() == "i += self.stride")
    offenders = []
    for ln in range(start + 1, end):
        score = scores.get(ln, 0)
        text = source[ln - 1]
        if score and "GIL seam" not in text and "with nogil" not in text:
            offenders.append(f"{ln}: score {score}: {text.strip()}")
    assert not offenders, "Python operations in the pacer loop:\n" + "\n".join(offenders)
    seams = [ln for ln in range(start + 1, end) if "GIL seam" in source[ln - 1]]
    # prepare a request's content before its wait (or inside a burst), flush after a burst,
    # poll while far, poll while spinning, reap at the in-flight bound, submit, flush a long
    # burst; while paused from the control port: flush the burst the pause ends, poll answers
    assert len(seams) == 10
    # The decision is the one pace_decision exposes to the tests.
    assert sum("pace_step(" in source[ln - 1] for ln in range(start + 1, end)) == 1


def test_users_loop_is_plain_c(tmp_path):
    """The closed-loop users' loop (UserPacer.run) holds no Python but its transport seams."""
    source, scores = _annotate(tmp_path, "_pacer")[Path("pacer/users.pyx")]
    run = next(i for i, l in enumerate(source, 1) if l.strip().startswith("def run(self"))
    start = next(i for i, l in enumerate(source, 1) if i > run and l.strip() == "while True:")
    end = next(i for i, l in enumerate(source, 1) if i > start and l.startswith("        if burst:"))
    offenders = [f"{ln}: score {scores[ln]}: {source[ln - 1].strip()}"
                 for ln in range(start + 1, end) if scores.get(ln, 0)
                 and "GIL seam" not in source[ln - 1] and "with nogil" not in source[ln - 1]
                 and not source[ln - 1].strip().startswith("raise ")]
    assert not offenders, "Python operations in the users loop:\n" + "\n".join(offenders)
    seams = [ln for ln in range(start + 1, end) if "GIL seam" in source[ln - 1]]
    # flush when every waiting user is done, poll for answers then, prepare, flush after a
    # burst, poll while far, poll while spinning, submit, flush a long burst
    assert len(seams) == 8
    assert sum("pace_step(" in source[ln - 1] for ln in range(start + 1, end)) == 1


# The libcurl transport's code run per request: each listed function, from its `def`/`cdef`
# line to the next top-level or method definition, must be plain C (a `with nogil` block, taken
# only to wait on epoll, costs just the release of the GIL).
CURL_PER_REQUEST = ("cpdef int prepare", "cdef Slot *take_slot", "cdef int use_pair",
                    "cdef void fill_early", "cdef void fill_slot",
                    "cpdef int submit", "cpdef int flush", "cpdef int poll", "cdef int collect",
                    "cdef int finish", "cdef int admit", "cdef int admit_queued",
                    "cdef int start_admitted", "cdef int pump", "cdef size_t discard_body", "cdef int stamp_sent",
                    "cdef size_t read_grpc_status", "cdef int watch_socket", "cdef int set_timer", "cdef int close_socket",
                    "cdef signed char curl_error_kind", 
                    "cdef signed char grpc_kind", "cdef long grpc_code_of_failure",
                    "cdef long grpc_code_of_http_status", "cdef void percent_decode",
                    "cdef inline int hex_value", "cdef const char *grpc_failure_text",
                    "cpdef int abort")


# replayer's own HTTP/1.1 client: the same rule; a `raise` (out of memory, a failed epoll_ctl)
# only runs on the error path. With its answer parser and the hosts' queues of waiting requests.
H1_PER_REQUEST = ("cpdef int prepare", "cdef int fill_early", "cpdef int submit", "cpdef int flush", "cpdef int poll", "cdef int dispatch",
                  "cdef int serve_queue", "cdef void assign",
                  "cdef void unlink_busy", "cdef int watch", "cdef int send_request",
                  "cdef int write_out", "cdef int on_event", "cdef int read_answer",
                  "cdef int record",
                  "cdef int complete", "cdef int fail", "cdef int broken", "cdef int close_conn",
                  "cdef int pump", "cdef int dial",
                  "cdef int dial_failed", "cdef int redial", "cdef int timed_out",
                  "cpdef int abort",
                  "cdef int host_enqueue", "cdef bint host_dequeue",
                  "cdef void answer_start", "cdef int answer_feed", "cdef inline int answer_done",
                  "cdef long long answer_droppable", "cdef int answer_dropped",
                  "cdef bint answer_ends_at_close", "cdef int parse_head",
                  "cdef long long blank_line_end", "cdef inline bint header_is",
                  "cdef bint value_has")


# The pacer's decision, its clocks (with the stall count of its spins) and the null transport;
# the filling of a request's content (fields, its own copy of a template); and the failure log every transport writes into on a failure (a bounded copy, no
# allocation). (The ring's push is left out: its wait for a full ring lets go of the GIL
# through the C API.)
PACER_PER_REQUEST = ("cdef inline PaceAction pace_step", "cdef long long now",
                     "cdef void sleep_until", "cdef long long spin_until",
                     "cdef void note_stall", "cdef long long spin_window",
                     "cdef void note_wake", "cpdef int submit", "cdef void note_failure",
                     "cdef void fill_part", "cdef int buffer_load", "cdef void buffer_swap",
                     "cdef void values",
                     # closed-loop users (pacer/users.pyx): a user's next event, payload and
                     # think time, the heap of waiting users, the read-back of answers
                     "cdef long long event_of", "cdef int payload_of", "cdef void assign",
                     "cdef long long think", "cdef void heap_push", "cdef int heap_pop",
                     "cdef long long reap",
                     # the live control: the seqlock read, the re-based clock, the weights
                     "cdef bint read_control", "cdef long long due_of", "cdef bint thinned")


def _python_lines(tmp_path: Path, module: str, functions: tuple[str, ...]) -> list[str]:
    """Lines of the listed functions (from the `def`/`cdef` line to the next definition at the
    same depth), in any source file of the module, that `cython -a` shows calling into Python."""
    offenders, found = [], set()
    for rel, (source, scores) in _annotate(tmp_path, module).items():
        for i, line in enumerate(source, 1):
            head = next((h for h in functions if line.strip().startswith(h + "(")), None)
            if head is None:
                continue
            found.add(head)
            indent = len(line) - len(line.lstrip())
            j = i + 1
            while j <= len(source) and (not source[j - 1].strip()
                                        or len(source[j - 1]) - len(source[j - 1].lstrip()) > indent):
                j += 1
            # The signature line itself (argument conversion for a cpdef's Python wrapper) is
            # yellow by construction; the body is what runs per request.
            for ln in range(i + 1, j):
                score = scores.get(ln, 0)
                text = source[ln - 1].strip()
                if score and text and not text.startswith(("#", "with nogil:", "raise ")):
                    offenders.append(f"{rel}:{ln}: score {score}: {text}")
    assert found == set(functions), set(functions) - found
    return offenders


def test_curl_transport_per_request_code_is_plain_c(tmp_path):
    offenders = _python_lines(tmp_path, "_curl", CURL_PER_REQUEST)
    assert not offenders, "Python operations in the libcurl transport:\n" + "\n".join(offenders)


def test_pacer_decision_clocks_ring_and_failure_log_are_plain_c(tmp_path):
    offenders = _python_lines(tmp_path, "_pacer", PACER_PER_REQUEST)
    assert not offenders, "Python operations in the pacer:\n" + "\n".join(offenders)


def test_native_http_per_request_code_is_plain_c(tmp_path):
    offenders = _python_lines(tmp_path, "_h1", H1_PER_REQUEST)
    assert not offenders, "Python operations in the native HTTP client:\n" + "\n".join(offenders)
