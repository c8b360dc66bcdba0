"""The hourly job image's Dockerfile, checked without a container engine: two stages (the
extensions built in the first, only its environment copied into the second), a user without
privileges, every file it copies present in the repository and not left out by .dockerignore
(in-tree builds and caches are), and its entrypoint the job's script."""
from __future__ import annotations

import fnmatch
import json
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    out, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def ignored(path: str) -> bool:
    """Whether .dockerignore leaves `path` out of the build context: the last pattern that
    matches it or a folder above it decides, '!' bringing it back."""
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    out = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        # '**/' also matches at the top; fnmatch's '*' crosses '/', as '**' does.
        globs = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        if any(fnmatch.fnmatchcase(prefix, g) for prefix in prefixes for g in globs):
            out = not negate
    return out


def test_two_stages_and_an_unprivileged_user():
    """The first stage compiles (a C compiler, pip install of the package); the last copies its
    environment only, runs as a numeric non-root user, and starts the job's entrypoint."""
    steps = instructions()
    froms = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(froms) == 2 and steps[froms[0]][1].endswith("AS build")
    build, final = steps[froms[0]:froms[1]], steps[froms[1]:]
    assert any(w == "RUN" and "gcc" in a for w, a in build)
    assert any(w == "RUN" and "pip install ." in a for w, a in build)
    assert not any(w == "RUN" and ("gcc" in a or "pip install" in a) for w, a in final)
    assert ("COPY", "--from=build /opt/replayer /opt/replayer") in final
    users = [a for w, a in final if w == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) != 0
    entry = json.loads(next(a for w, a in final if w == "ENTRYPOINT"))
    copied = {shlex.split(a)[-1]: shlex.split(a)[0] for w, a in final
              if w == "COPY" and not a.startswith("--from")}
    assert copied[entry[-1]] == "tools/hourly-entrypoint.sh"


def test_every_copied_file_is_in_the_build_context():
    """Each COPY source exists and is not left out by .dockerignore; the package's sources are
    in, what a local build made (extensions, gRPC stubs) and caches out (the image makes its
    own)."""
    for word, args in instructions():
        if word != "COPY" or args.startswith("--from"):
            continue
        for source in shlex.split(args)[:-1]:
            assert (ROOT / source).exists(), source
            assert not ignored(source), source
    for kept in ("replayer/cli.py", "replayer/generate/hourly.py", "_ext/replayer/_pacer.pyx",
                 "_ext/includes/curl_api.h", "proto/scheduler.proto", "pyproject.toml",
                 "setup.py", "README.md"):
        assert not ignored(kept), kept
    for left in ("replayer/_pacer.cpython-311-x86_64-linux-gnu.so", "replayer/__pycache__/x.pyc",
                 "replayer/proto/scheduler_pb2.py", "replayer/proto/scheduler_pb2_grpc.py",
                 "tests/conftest.py", "results/run-1/run.json", "build/cython/x.c", ".git/HEAD"):
        assert ignored(left), left
