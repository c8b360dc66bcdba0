"""Deploying the proxies, as the vSwarm loadgen does from its config.json.

config.json is a list of {"yaml-location", "predeployment-commands", "postdeployment-commands"};
an entry applies to the proxy whose profile "yaml" is the same path. For each service (one per
distinct endpoint host label), the plan is: its proxy's pre-deployment commands, then
`kubectl apply -f BUILD/<service>.yaml` (the proxy's YAML with metadata.name set to the
service name, as vSwarm renames each copy), then the post-deployment commands. Proxies with no
config entry get the apply alone, as in vSwarm.

Unlike vSwarm: commands run as argument lists (shlex-split, never through a shell; a command
that needs one is refused before anything runs), each is printed before it runs, the first
failure stops the deployment with its exit code, identical pre/post commands run once per
deployment, and nothing is deleted first (vSwarm starts with `kn service delete --all`).
Relative paths in config.json and profile.json are taken from config.json's directory, which
is also the commands' working directory. Before anything runs (and for --dry-run too), every
file the deployment reads is checked: each proxy's YAML and the files kubectl/kn commands
apply (-f/--filename, -k/--kustomize); all missing ones are named at once.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from replayer.errors import InputError, RunError
from replayer.jsonfile import read_json

SHELL_TOKENS = {"&&", "||", "|", ";", ">", ">>", "<", "&", "2>", "2>&1", "$(", "`"}
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


# Commands whose -f/--filename (-k/--kustomize) name files or directories they read.
FILE_READERS = {"kubectl", "kn", "oc"}
FILE_FLAGS = ("-f", "--filename", "-k", "--kustomize")


@dataclass
class ProxyConfig:
    pre: list[list[str]]
    post: list[list[str]]
    entry: int | None = None     # its index in config.json (None: the proxy has no entry)


def _commands(path: Path, i: int, entry: dict, key: str) -> list[list[str]]:
    value = entry.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise InputError(f"{path}: entry {i} field {key!r}: expected a list of command strings")
    out = []
    for c in value:
        try:
            argv = shlex.split(c)
        except ValueError as exc:
            raise InputError(f"{path}: entry {i} field {key!r}: cannot split {c!r} ({exc})") from None
        if not argv:
            continue
        shell = [t for t in argv if t in SHELL_TOKENS or t.startswith(("$(", "`"))]
        if shell:
            raise InputError(f"{path}: entry {i} field {key!r}: {c!r} needs a shell ({shell[0]!r}); "
                             "commands run without one: split it into separate commands")
        out.append(argv)
    return out


def load_config(path: Path | str) -> dict[str, ProxyConfig]:
    """yaml-location -> pre/post commands."""
    path = Path(path)
    data = read_json(path, "config", "-c/--config_proxy names the proxies' deployment config.json "
                           "(vSwarm tools/profiler/config.json)")
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of {{\"yaml-location\", "
                         "\"predeployment-commands\", \"postdeployment-commands\"}} objects")
    out: dict[str, ProxyConfig] = {}
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("yaml-location"), str):
            raise InputError(f"{path}: entry {i}: expected an object with a \"yaml-location\" string")
        out[entry["yaml-location"]] = ProxyConfig(pre=_commands(path, i, entry, "predeployment-commands"),
                                                  post=_commands(path, i, entry, "postdeployment-commands"),
                                                  entry=i)
    return out


@dataclass
class Service:
    name: str           # the Knative service name (first label of the endpoint)
    proxy: str
    yaml: str           # the proxy's YAML (as written in profile.json)
    build_yaml: Path    # the renamed copy that is applied


@dataclass
class Plan:
    services: list[Service]
    steps: list[tuple[list[str], Service | None]]   # argv, and the service whose YAML it applies
    workdir: Path
    # Files the deployment reads (as written, relative to workdir) and where each is named.
    reads: list[tuple[str, str]]
    build: Path


def file_arguments(argv: list[str]) -> list[str]:
    """The local files or directories a kubectl/kn command reads: its -f/--filename and
    -k/--kustomize values (not '-' for stdin, not URLs)."""
    if Path(argv[0]).name not in FILE_READERS or "logs" in argv[1:]:
        return []       # `kubectl logs -f` follows: its -f takes no file
    found = []
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in FILE_FLAGS and i + 1 < len(argv):
            found.append(argv[i + 1])
            i += 2
            continue
        for flag in FILE_FLAGS:
            if a.startswith(flag + "="):
                found.append(a[len(flag) + 1:])
                break
        else:
            if a[:2] in ("-f", "-k") and len(a) > 2 and not a.startswith("--"):
                found.append(a[2:])      # -fFILE, as kubectl's flag parser takes it
        i += 1
    return [f for f in found if f and f != "-" and "://" not in f]


def service_name(endpoint: str) -> str:
    return endpoint.split(".", 1)[0]


def plan_deployment(endpoints: list[str], proxies: list[str], proxy_yaml: dict[str, str | None],
                    config: dict[str, ProxyConfig], config_path: Path | str,
                    build_dir: Path | str) -> Plan:
    """endpoints[i], proxies[i]: the endpoint of trace function i and its proxy's name."""
    workdir = Path(config_path).resolve().parent
    build = Path(build_dir)
    services: dict[str, Service] = {}
    for ep, proxy in zip(endpoints, proxies):
        name = service_name(ep)
        s = services.get(name)
        if s is not None:
            if s.proxy != proxy:
                raise InputError(f"--endpoint-template: service {name!r} would serve proxies "
                                 f"{s.proxy!r} and {proxy!r}; put {{proxy}} in the first label")
            continue
        if not DNS_LABEL.match(name):
            raise InputError(f"--endpoint-template: service name {name!r} is not a DNS label "
                             "(lower-case letters, digits, '-', at most 63); change the template's "
                             "first label")
        y = proxy_yaml.get(proxy)
        if not y:
            raise InputError(f"profile: proxy {proxy!r} has no \"yaml\"; it cannot be deployed")
        services[name] = Service(name=name, proxy=proxy, yaml=y, build_yaml=build / f"{name}.yaml")
    steps: list[tuple[list[str], Service | None]] = []
    seen: set[tuple[str, ...]] = set()
    reads: list[tuple[str, str]] = []
    config_name = Path(config_path).name
    for s in services.values():
        cfg = config.get(s.yaml, ProxyConfig(pre=[], post=[]))
        where = (f"{config_name} entry {cfg.entry}" if cfg.entry is not None
                 else f"no {config_name} entry")
        reads.append((s.yaml, f"proxy {s.proxy}'s yaml; {where}"))
        for key, commands in (("predeployment-commands", cfg.pre),
                              ("postdeployment-commands", cfg.post)):
            for argv in commands:
                reads.extend((f, f"{config_name} entry {cfg.entry} {key}")
                             for f in file_arguments(argv))
        for argv in cfg.pre:
            if tuple(argv) not in seen:
                seen.add(tuple(argv))
                steps.append((argv, None))
        steps.append((["kubectl", "apply", "-f", str(s.build_yaml.resolve())], s))
        for argv in cfg.post:
            if tuple(argv) not in seen:
                seen.add(tuple(argv))
                steps.append((argv, None))
    return Plan(services=list(services.values()), steps=steps, workdir=workdir, reads=reads,
                build=build)


def check_plan(plan: Plan) -> list[str]:
    """Refuse a plan whose files are not all there (InputError naming every missing one and
    where it is named), before anything runs; returns the commands not found on PATH (the
    run would stop at the first of them; a dry run may be a preview on another machine)."""
    missing: dict[str, str] = {}
    for name, where in plan.reads:
        path = Path(name) if Path(name).is_absolute() else plan.workdir / name
        if name not in missing and not path.exists():
            missing[name] = where
    problems = []
    if missing:
        # Usually a whole folder is absent (vSwarm's yamls/ not copied next to config.json).
        tops = sorted({Path(n).parts[0] for n in missing if not Path(n).is_absolute()
                       and len(Path(n).parts) > 1
                       and not (plan.workdir / Path(n).parts[0]).exists()})
        problems.append(f"{len(missing)} file(s) the deployment reads are missing under "
                        f"{plan.workdir} (config.json's directory, where relative paths start"
                        + (f"; it has no {', '.join(tops)}" if tops else "") + "): "
                        + ", ".join(f"{name} ({where})" for name, where in missing.items()))
    blocker = next((a for a in (plan.build, *plan.build.parents) if a.exists()), None)
    if blocker is not None and not blocker.is_dir():
        problems.append(f"-b/--build {plan.build}: {blocker} is a file, not a directory")
    if problems:
        raise InputError("deploy: " + "; ".join(problems))
    return sorted({argv[0] for argv, _ in plan.steps if shutil.which(argv[0]) is None})


def renamed_yaml(text: str, name: str, source: str) -> str:
    """The YAML text with the top-level metadata.name set to `name`, everything else as is."""
    lines = text.splitlines(keepends=True)
    in_meta = False
    indent = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lead = len(line) - len(line.lstrip(" "))
        if lead == 0:
            if in_meta:
                break
            in_meta = stripped == "metadata:"
            continue
        if in_meta:
            if indent is None:
                indent = lead
            if lead == indent and stripped.startswith("name:"):
                end = "\n" if line.endswith("\n") else ""
                lines[i] = " " * lead + f"name: {name}" + end
                return "".join(lines)
    raise InputError(f"{source}: no top-level metadata.name to set; a proxy YAML is a Knative "
                     "Service with metadata: name:")


def _echo(argv: list[str], out) -> None:
    print("+ " + shlex.join(argv), file=out, flush=True)


def run_plan(plan: Plan, dry_run: bool, out=sys.stdout) -> None:
    """Print every step; unless dry_run, write the renamed YAMLs and run the steps in order,
    stopping at the first failure (RunError with the command's exit code)."""
    if not dry_run:
        for s in plan.services:
            src = Path(s.yaml)
            src = src if src.is_absolute() else plan.workdir / src
            try:
                text = src.read_text(encoding="utf-8")
            except OSError as exc:
                raise InputError(f"{src}: cannot read proxy {s.proxy!r}'s YAML ({exc.strerror}); "
                                 "profile.json's yaml paths are relative to config.json's "
                                 "directory") from None
            try:
                s.build_yaml.parent.mkdir(parents=True, exist_ok=True)
                s.build_yaml.write_text(renamed_yaml(text, s.name, str(src)), encoding="utf-8")
            except OSError as exc:
                raise InputError(f"{s.build_yaml}: cannot write ({exc.strerror}); check -b/--build") from None
    for argv, _service in plan.steps:
        _echo(argv, out)
        if dry_run:
            continue
        try:
            proc = subprocess.run(argv, cwd=plan.workdir, stdout=out, stderr=sys.stderr)
        except FileNotFoundError:
            raise RunError(f"deploy: cannot run {argv[0]!r}: command not found; install it or put "
                           "it on PATH", exit_code=127) from None
        except OSError as exc:
            raise RunError(f"deploy: cannot run {argv[0]!r}: {exc.strerror}", exit_code=126) from None
        if proc.returncode != 0:
            raise RunError(f"deploy: {shlex.join(argv)} exited with code {proc.returncode}; "
                           "stopped here (its output is above)", exit_code=1)
