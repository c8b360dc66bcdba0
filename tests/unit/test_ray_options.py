"""`replayer run --ray [ADDRESS] --nodes N`: parsed as one option whose address may be left
out, and refused in one line where it cannot apply."""
from __future__ import annotations

import pytest

from replayer.cli import build_options, build_parser, main


def _opts(*args: str):
    argv = ["run", *args]
    ns = build_parser(argv).parse_args(argv)
    return build_options(ns._options, ns, environ={})


def test_ray_address_may_be_left_out():
    """--ray alone means the cluster this machine belongs to ('auto', as ray.init takes it);
    with an address, that address; --nodes defaults to every node (0)."""
    assert (_opts("--ray").ray, _opts("--ray").nodes) == ("auto", 0)
    assert _opts("--ray", "--nodes", "3").nodes == 3            # --nodes is not taken as ADDRESS
    assert _opts("--ray", "ray://head:10001", "--nodes", "2").ray == "ray://head:10001"
    assert _opts().ray is None


@pytest.mark.parametrize("args, words", [
    (["--nodes", "3"], "--nodes 3: only with --ray"),
    (["--ray", "--shard", "1/3"], "--shard 1/3: --ray gives each node its shard"),
    (["--ray", "--nodes", "-1"], "--nodes -1"),
    (["--ray", ""], "--ray ''"),
])
def test_distributed_options_refused_in_one_line(capsys, args, words):
    """Options that cannot apply to a distributed run are refused before anything starts: one
    line naming the option, exit 2."""
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
