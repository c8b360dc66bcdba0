"""`cython -a` proof that the pacer's loop holds no Python: every line of Pacer.run's send loop
compiles to plain C, except the marked transport seams (where the GIL is held on purpose) and
the `with nogil` blocks (whose only cost is releasing the GIL)."""
from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _annotated_lines(tmp_path: Path) -> dict[int, tuple[int, str]]:
    for f in ("_pacer.pyx", "clock.pxd"):
        shutil.copy(ROOT / "_ext" / f, tmp_path / f)
    directives = ["-X", "boundscheck=False", "-X", "wraparound=False", "-X",
                  "initializedcheck=False", "-X", "cdivision=True"]
    subprocess.run([sys.executable, "-m", "cython", "-3", "-a", *directives, "_pacer.pyx"],
                   cwd=tmp_path, check=True, capture_output=True)
    text = (tmp_path / "_pacer.html").read_text()
    lines = {}
    for m in re.finditer(r'<pre class="cython line score-(\d+)"[^>]*>.<span class="">(\d+)</span>:(.*?)</pre>',
                         text, re.S):
        code = html.unescape(re.sub("<[^>]+>", "", m.group(3)))
        lines[int(m.group(2))] = (int(m.group(1)), code)
    return lines


def test_send_loop_is_plain_c(tmp_path):
    lines = _annotated_lines(tmp_path)
    source = (ROOT / "_ext" / "_pacer.pyx").read_text().splitlines()
    start = next(i for i, l in enumerate(source, 1) if l.strip() == "while i < n:")
    end = next(i for i, l in enumerate(source, 1) if i > start and l.strip() == "if burst:"
               and source[i - 2].strip() == "i += self.stride")
    offenders = []
    for ln in range(start + 1, end):
        score, code = lines.get(ln, (0, ""))
        text = source[ln - 1]
        if score and "GIL seam" not in text and "with nogil" not in text:
            offenders.append(f"{ln}: score {score}: {text.strip()}")
    assert not offenders, "Python operations in the pacer loop:\n" + "\n".join(offenders)
    seams = [ln for ln in range(start + 1, end) if "GIL seam" in source[ln - 1]]
    assert len(seams) == 4     # flush after a burst, poll while far, submit, flush a long burst
