"""Bad input shared by the unit tests of the decoders and option parsing and by the
end-to-end tests of the same input given to `replayer` as a command: malformed load.json files
with the place their one-line error must name, hypothesis strategies for random and mutated
files and option values, and a time bound that turns a hang into a failure."""
from __future__ import annotations

import json
import signal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# In process: many examples; as commands (a process each): a few.
IN_PROCESS = settings(max_examples=150, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])
COMMANDS = settings(max_examples=10, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
TIME_BOUND_S = 5.0


class _Timeout(Exception):
    pass


class time_bound:
    """Fail (instead of hanging) when a decoder takes longer than TIME_BOUND_S."""

    def __enter__(self):
        def on_alarm(signum, frame):
            raise _Timeout(f"took longer than {TIME_BOUND_S}s")
        self.old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, TIME_BOUND_S)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old)


# (name, load.json text, what the one error line must say besides the file name)
MALFORMED_LOAD_JSON = [
    ("not json", "[{\"timestamp\": [1, 2], \"endpoint\": [\"a\", \"b\"]},\n oops]", "line 2 column 2"),
    ("top level not a list", '{"timestamp": [1], "endpoint": ["a"]}', "expected a JSON list"),
    ("unit not an object", '[[1, 2]]', "object 0"),
    ("missing endpoint", '[{"timestamp": [1]}]', 'missing "endpoint"'),
    ("timestamp not a list", '[{"timestamp": 5, "endpoint": ["a"]}]', 'object 0 field "timestamp": expected a list'),
    ("endpoint not a list", '[{"timestamp": [5], "endpoint": "a"}]', 'object 0 field "endpoint": expected a list'),
    ("non-integer offset", '[{"timestamp": [1, "x"], "endpoint": ["a", "a"]}]', '"timestamp"[1]'),
    ("float offset", '[{"timestamp": [1.5], "endpoint": ["a"]}]', '"timestamp"[0]'),
    ("negative offset", '[{"timestamp": [], "endpoint": []}, {"timestamp": [4, -1], "endpoint": ["a", "a"]}]',
     'object 1 field "timestamp"[1]: offset -1 is negative'),
    ("unsorted", '[{"timestamp": [5, 9, 7], "endpoint": ["a", "a", "a"]}]', '"timestamp"[2]: offset 7 comes after 9'),
    ("beyond the unit", '[{"timestamp": [2000000], "endpoint": ["a"]}]', "beyond the second unit"),
    ("length mismatch", '[{"timestamp": [1, 2], "endpoint": ["a"]}]', '"timestamp" has 2 entries but "endpoint" has 1'),
    ("empty endpoint", '[{"timestamp": [1, 2], "endpoint": ["a", ""]}]', 'object 0 field "endpoint"[1]'),
    ("endpoint not a string", '[{"timestamp": [1], "endpoint": [7]}]', 'object 0 field "endpoint"[0]'),
    ("trailing garbage", '[{"timestamp": [1], "endpoint": ["a"]}] x', "extra data"),
    ("empty file", "", "expected a JSON list"),
    ("truncated", '[{"timestamp": [1, 2', "not valid JSON"),
]


# --- strategies -----------------------------------------------------------------------------

def _unit(max_per_unit=6, unit_us=1_000_000):
    return st.integers(0, max_per_unit).flatmap(lambda n: st.tuples(
        st.lists(st.integers(0, unit_us - 1), min_size=n, max_size=n).map(sorted),
        st.lists(st.sampled_from(["a.example.com", "b", "svc-1", "x.y"]), min_size=n, max_size=n)))


valid_load = st.lists(_unit(), min_size=0, max_size=4).map(
    lambda units: json.dumps([{"timestamp": ts, "endpoint": eps} for ts, eps in units]))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)

# Characters that matter to JSON and CSV, plus some that do not.
noise = st.text(alphabet=st.sampled_from(list('[]{}",:.-+0123456789eE \n\tatrufnl\\/\x00\u00e9\ufeff,;\r')),
                min_size=1, max_size=6)


@st.composite
def mutated(draw, base: st.SearchStrategy[str]):
    """A valid text with a few edits: delete a range, insert noise, replace a character."""
    text = draw(base)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "truncate", "duplicate"]))
        i = draw(st.integers(0, len(text)))
        if op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 8)):]
        elif op == "insert":
            text = text[:i] + draw(noise) + text[i:]
        elif op == "replace" and text:
            i = min(i, len(text) - 1)
            text = text[:i] + draw(noise)[0] + text[i + 1:]
        elif op == "truncate":
            text = text[:i]
        else:
            text = text[:i] + text[i:i + draw(st.integers(1, 20))] + text[i:]
    return text


@st.composite
def field_swapped(draw):
    """A valid load.json with one field (or one unit) replaced by a random JSON value."""
    units = json.loads(draw(valid_load)) or [{"timestamp": [1], "endpoint": ["a"]}]
    k = draw(st.integers(0, len(units) - 1))
    where = draw(st.sampled_from(["timestamp", "endpoint", "unit", "element", "extra"]))
    value = draw(json_values)
    if where == "unit":
        units[k] = value
    elif where == "extra":
        units[k][draw(st.text(max_size=5))] = value
    elif where == "element" and units[k]["timestamp"]:
        key = draw(st.sampled_from(["timestamp", "endpoint"]))
        units[k][key][draw(st.integers(0, len(units[k][key]) - 1))] = value
    else:
        units[k][where if where != "element" else "timestamp"] = value
    return json.dumps(units)


# --- option values --------------------------------------------------------------------------

WEIRD = ["", "0", "-1", "1", "2", "1.5", "-0", "1e9", "1e309", "-1e309", "inf", "-inf", "nan",
         "NaN", "99999999999999999999", "0x10", "abc", "true", "false", " 3", "3 ", "1/2",
         "0/0", "2/1", "a=b", "=", "*=", "Name: v", "Name", ":v", "{endpoint}", "{port}",
         "{", "}", "{0}", "{endpoint.x}", "{endpoint[0]}", "{nope}", "{endpoint!r}",
         "{port:>99999999999}", "http://{endpoint}:{port}/", "é", "\u2028", "--workers"]
RUN_OPTIONS = ["-workers", "-duration", "-warmup", "-min", "-port", "-grpcTimeout", "-latf",
               "--protocol", "--url-template", "--method", "--header", "--body", "--http-version",
               "--grpc-method", "--grpc-name", "--resolve", "--spin-us", "--max-inflight",
               "--time-scale", "--shard", "--start-at", "--flush-ms", "--on-worker-failure"]
SERVE_OPTIONS = ["--host", "--http-port", "--grpc-port", "--delay-ms", "--status", "--grpc-code",
                 "--fault", "--fault-seed", "--tls-cert", "--tls-key"]

run_option_pairs = st.lists(st.tuples(st.sampled_from(RUN_OPTIONS),
                                      st.sampled_from(WEIRD) | st.text(max_size=12)),
                            min_size=1, max_size=4)
serve_option_pairs = st.lists(st.tuples(st.sampled_from(SERVE_OPTIONS),
                                        st.sampled_from(WEIRD + ["reset:0.5", "hang:2"])
                                        | st.text(max_size=12)),
                              min_size=1, max_size=4)
