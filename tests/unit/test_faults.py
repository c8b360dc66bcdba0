"""The built-in target's share faults (replayer.loopback.faults): `--fault KIND[=ARG]:SHARE[@PATH]`
parsed into rules with their defaults, shares checked per protocol, and the seeded draw that
gives each request its rule."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from input_cases import IN_PROCESS, mutated
from replayer.errors import InputError
from replayer.loopback.faults import KINDS, FaultRule, ShareChooser, check_shares, parse_fault


@pytest.mark.parametrize("text, rule", [
    ("reset:0.2", FaultRule("reset", 0.2)),
    ("RESET:1", FaultRule("reset", 1.0)),
    ("status:0.1", FaultRule("status", 0.1, 503)),
    ("status=404:0.1", FaultRule("status", 0.1, 404)),
    ("delay=500:0.3@/api", FaultRule("delay", 0.3, 500, "/api")),
    ("slow:0.5", FaultRule("slow", 0.5, 10)),
    ("truncate:0", FaultRule("truncate", 0.0, 1024)),
    ("bytes:0.1", FaultRule("bytes", 0.1, 1 << 20)),
    ("grpc-code=8:1", FaultRule("grpc-code", 1.0, 8)),
    ("unavailable:0.5@/helloworld", FaultRule("unavailable", 0.5, None, "/helloworld")),
])
def test_a_fault_spec_gives_its_rule(text, rule):
    """Kind (any case), share, the argument or the kind's default, and the path prefix."""
    assert parse_fault(text) == rule


def test_each_kind_belongs_to_its_protocols():
    """delay and hang apply to HTTP and gRPC alike; the others to one protocol."""
    both = {k for k in KINDS if FaultRule(k, 0).http and FaultRule(k, 0).grpc}
    assert both == {"delay", "hang"}
    assert FaultRule("reset", 0).http and not FaultRule("reset", 0).grpc
    assert FaultRule("unavailable", 0).grpc and not FaultRule("unavailable", 0).http


@pytest.mark.parametrize("text, words", [
    ("reset", "expected KIND[=ARG]:SHARE"),
    (":0.5", "expected KIND[=ARG]:SHARE"),
    ("explode:0.1", "unknown fault 'explode'"),
    ("reset:1.5", "between 0 and 1"),
    ("reset:x", "'x' is not a number"),
    ("delay:0.1", "delay needs a value"),
    ("delay=soon:0.1", "expected a whole number"),
    ("delay=-5:0.1", "must be 0 or more"),
    ("status=999:0.1", "status=999"),
    ("grpc-code=0:0.1", "grpc-code=0"),
    ("slow=0:0.1", "at least 1 byte per second"),
    ("reset:0.1@api", "must start with '/'"),
])
def test_a_bad_fault_spec_says_why(text, words):
    """A malformed spec is one line naming the --fault value and what to write instead."""
    with pytest.raises(InputError) as exc:
        parse_fault(text)
    message = str(exc.value)
    assert message.startswith(f"--fault {text!r}: ") and words in message and "\n" not in message


def test_shares_add_up_per_protocol():
    """Shares of every-path rules may add up to 1 per protocol; delay and hang count for both;
    rules limited to a path prefix are not counted."""
    check_shares([parse_fault("reset:0.6"), parse_fault("unavailable:0.6"),
                  parse_fault("hang:0.4"), parse_fault("status:0.9@/a")])
    with pytest.raises(InputError, match="the HTTP shares add up to 1.2"):
        check_shares([parse_fault("reset:0.6"), parse_fault("delay=1:0.6")])
    with pytest.raises(InputError, match="the gRPC shares add up to 1.1"):
        check_shares([parse_fault("unavailable:0.6"), parse_fault("hang:0.5")])


def test_share_chooser_draws_shares_reproducibly():
    """Each request draws independently: the same seed gives the same picks, another seed
    others; each rule gets its share (within 4 standard deviations of the binomial); a rule
    with a path prefix only applies under it."""
    rules = [parse_fault("reset:0.2"), parse_fault("status=503:0.1"), parse_fault("hang:0.05@/a")]
    a, b = ShareChooser(rules, seed=7), ShareChooser(rules, seed=7)
    picks = [a.pick("/x") for _ in range(10000)]
    assert picks == [b.pick("/x") for _ in range(10000)]
    assert picks != [ShareChooser(rules, seed=8).pick("/x") for _ in range(10000)]
    assert abs(sum(p is rules[0] for p in picks) - 2000) <= 160
    assert abs(sum(p is rules[1] for p in picks) - 1000) <= 120
    assert not any(p is rules[2] for p in picks)
    picks = [a.pick("/a/b") for _ in range(10000)]
    assert abs(sum(p is rules[2] for p in picks) - 500) <= 90


def test_no_rules_no_fault():
    """Without rules the chooser is falsy (the server skips it) and picks nothing."""
    chooser = ShareChooser([])
    assert not chooser and chooser.pick("/x") is None
    assert ShareChooser([parse_fault("reset:1")]).pick("/x").kind == "reset"


@IN_PROCESS
@given(text=st.text(max_size=30) | mutated(st.sampled_from(
    ["reset:0.2", "status=503:0.1", "delay=500:0.3@/api", "grpc-code=8:1", "slow=5:0.5"])))
def test_random_fault_specs(text):
    """Any text: one line naming --fault, or a rule of a known kind with a share in [0, 1], a
    non-negative argument and a path prefix starting with '/'."""
    try:
        rule = parse_fault(text)
    except InputError as exc:
        assert "--fault" in str(exc) and "\n" not in str(exc)
        return
    assert rule.kind in KINDS and 0 <= rule.share <= 1
    assert rule.arg is None or rule.arg >= 0
    assert rule.path is None or rule.path.startswith("/")
