"""Fleet runs: one run's interleave groups as Ray tasks on the nodes of a running cluster.

The driver (the machine running `bench.py run --cluster ADDRESS`) plans and prepares
the run as a local run would (so bad input still fails before anything runs, and the
driver knows its own artifact SHA-256s), checks the cluster can take every job, then
submits one Ray task per interleave group. Each task builds and exports its group
on its node with that node's libraries, times it with `pipeline.time_group`, and
returns rows and samples; the driver writes each group through the results writer
as it arrives, so the one results file is only ever written by one process.

Placement:
- every node offers one unit of the `bench_slot` resource and every task asks for
  one, so a machine times one group at a time;
- `--on LABEL[,LABEL]` names placements; a placement is a custom resource a node
  offers (`ray start --resources '{"xeon": 1}'`), an accelerator type Ray detected
  (`accelerator_type:T4`, pass `T4`), or a node label `key=value`
  (`ray start --labels key=value`). Each job runs once per placement; within a
  placement, groups spread over the nodes that offer it.

Code: the driver's modbench package (its `modbench/` folder as installed, staged
from a checkout's bench/, models/, exporters/ and common/) is shipped to every node
as Ray's runtime_env `working_dir`, so every node runs the same suite code; each node's own torch, ONNX Runtime, ... build the artifacts. Rows record
the driver's git commit (the code that ran) and the node's library versions; the
driver compares those and each artifact's SHA-256 with its own and prints drift.

Start-up: while the driver prepares, one warm-up task per node that may be used
imports the suite and the runtime in the worker the node's groups then reuse (so
a run's first group does not pay for it, and a node that cannot import the suite
is refused before anything is written).

Faults: a task whose node dies is retried by Ray on another node that matches
(`max_retries`); one whose placement no live node offers any more is cancelled after
a grace period and reported missing, as is a node that cannot import the suite
(one line, returned by the task rather than raised from the worker). Ctrl-C
keeps every row already written; the remote work stops as the driver disconnects
(Ray ends its job, and the nodes kill the job's workers).
"""
from __future__ import annotations

import importlib
import logging
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from modbench.common.errors import ModbenchError, UsageError, first_line

from .env import machine_env
from .pipeline import Job, RunRequest, placement_slug, prepare_all, time_group
from .runners import get_runner

SLOT = "bench_slot"
ACCELERATOR_PREFIX = "accelerator_type:"
# Ray retries a task whose worker or node died; enough for a node or two lost.
MAX_RETRIES = 3
# How long a group may wait with no live node able to take it before it is given up
# as missing (a node just lost needs a few seconds to be declared dead, and a
# replacement may join meanwhile).
GRACE_S = float(os.environ.get("MODBENCH_FLEET_GRACE_S", "30"))
# How long the driver waits, once it has prepared, for the nodes' warm-ups (import
# of the suite and runtime); a node slower than that is left to its first group.
WARM_UP_WAIT_S = float(os.environ.get("MODBENCH_FLEET_WARM_UP_WAIT_S", "20"))
# What a node never needs of the package's folders.
SHIP_IGNORED = ("__pycache__", "*.pyc", "*.lock")


def stage_code(dest) -> Path:
    """The modbench package as it is installed (one folder, `modbench/`), copied into
    `dest` from wherever this process imported it: a checkout maps bench/, models/,
    exporters/ and common/ under that one name, an installed copy already is one folder.
    It is Ray's working_dir: an allowlist, so that whatever else lies beside the code
    (results, environments, a downloaded wheel) never travels."""
    dest = Path(dest)
    ignore = shutil.ignore_patterns(*SHIP_IGNORED)
    shutil.copytree(Path(__file__).resolve().parent, dest / "modbench", ignore=ignore)  # this module's package
    for name, module in sorted(sys.modules.items()):
        parent = sys.modules.get(name.rpartition(".")[0])
        if not name.startswith("modbench.") or not hasattr(module, "__path__") or parent is None:
            continue
        here, beside = Path(module.__file__).parent, Path(parent.__file__).parent / name.rpartition(".")[2]
        if here != beside:  # a subpackage that lives in a folder of its own (models/ -> modbench.models)
            shutil.copytree(here, dest / Path(*name.split(".")), ignore=ignore)
    return dest


# The driver's library versions each node's are compared with.
VERSION_KEYS = ("python", "torch_version", "onnx_version", "onnxruntime_version",
                "onnxruntime_gpu_version", "timm_version", "numpy_version", "coremltools_version")


class FleetError(ModbenchError):
    """The cluster cannot be reached, or cannot run the request as asked."""


# ---------------------------------------------------------------- the cluster

@dataclass
class Node:
    node_id: str
    hostname: str
    address: str
    resources: dict
    labels: dict

    @property
    def slots(self) -> float:
        return self.resources.get(SLOT, 0)

    @property
    def accelerators(self) -> list[str]:
        return [k[len(ACCELERATOR_PREFIX):] for k in self.resources if k.startswith(ACCELERATOR_PREFIX)]

    @property
    def custom(self) -> list[str]:
        """Resources the user gave the node (not Ray's own)."""
        builtin = {"CPU", "GPU", "memory", "object_store_memory", SLOT}
        return sorted(k for k in self.resources if k not in builtin and not k.startswith(("node:", ACCELERATOR_PREFIX)))

    def describe(self) -> str:
        user_labels = {k: v for k, v in self.labels.items() if not k.startswith("ray.io/node-id")}
        parts = [f"{self.hostname} ({self.node_id[:8]})", f"{SLOT} {self.slots:g}"]
        if self.resources.get("GPU"):
            parts.append(f"{self.resources['GPU']:g} GPU")
        parts += [f"accelerator {a}" for a in self.accelerators]
        parts += [f"resource {r}" for r in self.custom]
        parts += [f"label {k}={v}" for k, v in sorted(user_labels.items())]
        return " ".join(parts[:1]) + ": " + ", ".join(parts[1:])


@dataclass(frozen=True)
class Placement:
    """Where a group may run: any node with a slot, or the nodes offering `label`."""

    label: str | None = None
    kind: str = "any"  # any | resource | accelerator | label

    def matches(self, node: Node) -> bool:
        if node.slots < 1:
            return False
        if self.kind == "resource":
            return node.resources.get(self.label, 0) > 0
        if self.kind == "accelerator":
            return node.resources.get(ACCELERATOR_PREFIX + self.label, 0) > 0
        if self.kind == "label":
            key, value = self.label.split("=", 1)
            return node.labels.get(key) == value
        return True

    def task_options(self, gpu: bool) -> dict:
        # A sliver of the placement's resource (as Ray's own accelerator_type option
        # does) places the task without using the resource up: the slot is what
        # serialises a machine.
        opts: dict = {"resources": {SLOT: 1}, "num_cpus": 0}
        if gpu:
            opts["num_gpus"] = 1  # Ray then sets CUDA_VISIBLE_DEVICES to the GPU it gives
        if self.kind == "resource":
            opts["resources"][self.label] = 0.001
        elif self.kind == "accelerator":
            opts["resources"][ACCELERATOR_PREFIX + self.label] = 0.001
        elif self.kind == "label":
            key, value = self.label.split("=", 1)
            opts["label_selector"] = {key: value}
        return opts


def parse_on(text: str | None) -> list[str]:
    if text is None:
        return []
    labels = [t.strip() for t in text.split(",")]
    if not all(labels):
        raise UsageError(f"--on takes labels separated by commas, not {text!r}")
    if len({placement_slug(t) for t in labels}) != len(labels):  # row ids would clash
        raise UsageError(f"--on names a label twice: {text!r}")
    return labels


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of HOST:PORT, None for 'auto'; UsageError otherwise."""
    if address == "auto":
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--cluster takes HOST:PORT of a running Ray cluster (e.g. 127.0.0.1:6379) "
                         f"or 'auto', not {address!r}")
    return host.strip("[]"), int(port)


def _reachable_outside(port: int) -> bool:
    """Whether something listens on `port` at this machine's network address."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("8.8.8.8", 80))  # as Ray does: picks the outgoing interface, sends nothing
            ip = probe.getsockname()[0]
        if ip.startswith("127."):
            return False
        socket.create_connection((ip, port), timeout=2).close()
        return True
    except OSError:
        return False


def connect(address: str) -> str:
    """Connect this process to the cluster, shipping the suite's code; the GCS address."""
    hostport = parse_address(address)
    if hostport is not None:
        # Fail in a second, not after Ray's minutes of retries, when nothing listens.
        try:
            socket.create_connection(hostport, timeout=5).close()
        except OSError as exc:
            raise FleetError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None
        if _is_loopback(hostport[0]) and "ray" not in sys.modules and not _reachable_outside(hostport[1]):
            # Ray rewrites a loopback address to the machine's network address
            # before connecting, which misses a cluster bound to 127.0.0.1 only (a
            # single-machine cluster); this documented switch keeps loopback as is.
            # A cluster started the usual way listens on the network address too,
            # and then Ray's rewrite is what finds its nodes.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        # Ray is optional and slow to import: only a fleet run needs it.
        import ray
    except ImportError:
        raise FleetError("--cluster needs Ray, which this environment lacks; install the suite with "
                         "the README's set-up command") from None
    staging = Path(tempfile.mkdtemp(prefix="modbench-ship-"))
    try:
        # Ray packs and uploads the working_dir during init: the staged copy can go after.
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                 runtime_env={"working_dir": str(stage_code(staging / "code"))})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        # e.g. nothing at 'auto', a Ray version other than the cluster's
        raise FleetError(f"cannot connect to the Ray cluster at {address}: {first_line(exc)}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ray.get_runtime_context().gcs_address


def disconnect() -> None:
    import ray  # optional; imported once connect() has found it

    if ray.is_initialized():
        ray.shutdown()


def live_nodes() -> list[Node]:
    import ray  # optional; imported once connect() has found it

    return [Node(n["NodeID"], n.get("NodeManagerHostname") or n.get("NodeName", "?"),
                 n.get("NodeManagerAddress", ""), dict(n.get("Resources") or {}), dict(n.get("Labels") or {}))
            for n in ray.nodes() if n.get("Alive")]


def resolve_placements(labels: list[str], nodes: list[Node], gpu: bool) -> list[Placement]:
    """The placements of `--on`, each offered by at least one node with a bench slot;
    FleetError (one line naming what the cluster has) otherwise."""
    have = "; ".join(n.describe() for n in nodes) or "no live nodes"
    slotted = [n for n in nodes if n.slots >= 1]
    if not slotted:
        raise FleetError(f"no node of the cluster offers a {SLOT}; start each node with "
                         f"--resources '{{\"{SLOT}\": 1}}' (the cluster has: {have})")
    if gpu:
        slotted = [n for n in slotted if n.resources.get("GPU", 0) >= 1]
        if not slotted:
            raise FleetError(f"a GPU runtime needs a node with a GPU and a {SLOT}; the cluster has: {have}")
    placements = []
    for label in labels or [None]:
        if label is None:
            placements.append(Placement())
            continue
        if "=" in label:
            cands = [Placement(label, "label")]
        else:
            cands = [Placement(label, "resource"), Placement(label, "accelerator")]
        found = next((t for t in cands if any(t.matches(n) for n in slotted)), None)
        if found is None:
            what = "GPU node with a bench slot" if gpu else f"node with a {SLOT}"
            raise FleetError(f"no {what} offers {label!r} (a custom resource, accelerator type or "
                             f"key=value label); the cluster has: {have}")
        placements.append(found)
    return placements


def check_slots(nodes: list[Node]) -> list[str]:
    """Warnings for nodes that would time two groups at once."""
    return [f"warning: node {n.hostname} ({n.node_id[:8]}) offers {n.slots:g} {SLOT}s: it may time "
            "several groups at once, which disturbs both" for n in nodes if n.slots > 1]


# ---------------------------------------------------------------- on a node

def _shipped(entry: str, name: str):
    """A remote function, built here so that cloudpickle ships it by value: a node
    that cannot import the suite then still runs it and reports that in one line,
    instead of failing inside Ray while unpickling a function of bench.fleet. On the
    node it calls bench.fleet.<entry>(argument, node_id, entered)."""

    def on_node(argument) -> dict:
        # Imported inside: this function is shipped by value and runs on the node.
        import importlib
        import platform
        import time

        entered = time.monotonic()
        host = platform.node()
        try:
            import ray  # on the node, inside the function shipped by value

            node_id = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - only for the label of the error
            node_id = "-"
        try:
            # The suite itself: the import this function exists to try on the node.
            fleet = importlib.import_module("modbench.fleet")
        except BaseException as exc:  # noqa: BLE001 - any import failure is the node's setup
            # Written out, not common.errors.first_line: the suite is what failed to import.
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return {"error": f"cannot import the suite ({type(exc).__name__}: {msg})",
                    "node_id": node_id, "hostname": host}
        return getattr(fleet, entry)(argument, node_id, entered)

    on_node.__name__ = on_node.__qualname__ = name  # the task's name in Ray's listings
    return on_node


def warm_here(runtime: str, node_id: str, entered: float | None = None) -> dict:
    """On a node (the first task there, while the driver prepares): load what preparing
    and timing will need in the worker the node's groups then reuse; one error line if
    it cannot. (The suite itself, torch and timm were imported with this module.)
    `seconds`: how long that took since the task started on the node."""
    out = {"node_id": node_id, "hostname": platform.node()}
    try:
        runner = get_runner(runtime)
        runner.check_available()
        for lib in ("timm", "onnx") if runner.artifact == "onnx" else ("timm",):
            importlib.import_module(lib)
    except ModbenchError as exc:
        return dict(out, error=first_line(exc))
    except Exception as exc:  # noqa: BLE001 - one line to the driver
        return dict(out, error=first_line(exc, with_type=True))
    return dict(out, seconds=time.monotonic() - entered) if entered is not None else out


def warm_up(placements, nodes: list[Node], runtime: str, gpu: bool) -> dict:
    """Start one warm-up task on every node a placement may use (it waits for the
    node's bench slot, so it never disturbs a benchmark already running there)."""
    import ray  # optional; imported once connect() has found it
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(_shipped("warm_here", "modbench_warmup"))
    chosen = {n.node_id: n for n in nodes for t in placements if t.matches(n)}
    refs = {}
    for node in chosen.values():
        opts = dict(Placement().task_options(gpu), max_retries=0, name="modbench:warm-up",
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False))
        refs[task.options(**opts).remote(runtime)] = node
    return refs


def warm_up_errors(refs: dict, timeout: float) -> list[str]:
    """One line per node whose warm-up failed; nodes not done within `timeout` are
    left to their groups (which report the same failure if there is one)."""
    import ray  # optional; imported once connect() has found it
    from ray.exceptions import RayError

    if not refs:
        return []
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    errors = []
    for ref in ready:
        node = refs[ref]
        try:
            result = ray.get(ref)
        except RayError:
            continue  # the node was lost: its groups go elsewhere or are reported missing

        if result.get("error"):
            errors.append(f"node {node.hostname} ({node.node_id[:8]}): {result['error']}")
    return errors


def run_group_here(payload: dict, node_id: str, entered: float | None = None) -> dict:
    """On a node: prepare (build, export) and time one group; rows and samples back,
    with how long the node spent importing, preparing and timing (seconds)."""
    host = platform.node()
    out = {"node_id": node_id, "hostname": host, "group": payload["group"]}
    t0 = time.monotonic()
    seconds = {"import": t0 - entered if entered is not None else 0.0}
    try:
        req = RunRequest.from_json(payload["request"])
        jobs = [Job(**j) for j in payload["jobs"]]
        runner = get_runner(req.runtime)
        runner.check_available()
        prepared = prepare_all(jobs, req, runner.artifact)
        t1 = time.monotonic()
        seconds["prepare"] = t1 - t0
        env = dict(machine_env())
        # The code that ran is the driver's (shipped as working_dir, no .git here).
        env.update(payload["driver_git"])
        env.update(cluster=payload["cluster"], node=f"{node_id}:{host}")
        pairs = time_group(prepared, req, payload["run_id"], payload["group"], runner=runner, env=env)
        seconds["timing"] = time.monotonic() - t1
    except ModbenchError as exc:
        return dict(out, error=first_line(exc))
    except Exception as exc:  # noqa: BLE001 - one line to the driver, not a traceback in a log
        return dict(out, error=first_line(exc, with_type=True))
    return dict(out, rows=pairs, versions={k: env.get(k) for k in VERSION_KEYS}, seconds=seconds)


# ---------------------------------------------------------------- the driver

@dataclass
class Outcome:
    rows: list[dict] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (row_id, why)
    drift: list[str] = field(default_factory=list)


def _artifact_key(row: dict) -> tuple:
    return (row["model"], row["variant"], int(row["batch"]), int(row["resolution"]))


def execute(groups: list[list], placements: dict, req, writer, run_id: str, cluster: str, gpu: bool,
            driver_env: dict, log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
            on_row: Callable[[dict], None] = lambda row: None) -> Outcome:
    """Run each group as a task on a matching node; write rows as groups come back.

    groups: interleave groups of the driver's Prepared jobs; placements: label -> Placement
    (None -> any node). Returns what was written, what is missing and why."""
    import ray  # optional; imported once connect() has found it
    from ray.exceptions import RayError

    task = ray.remote(_shipped("run_group_here", "modbench_group"))
    driver_sha = {_artifact_key({"model": p.job.model, "variant": p.job.variant, "batch": p.job.batch,
                                 "resolution": p.job.resolution}): p.columns.get("artifact_sha256")
                  for g in groups for p in g}
    driver_git = {"git_commit": driver_env.get("git_commit"), "git_dirty": driver_env.get("git_dirty")}
    pending: dict = {}  # ref -> (group index, members, placement)
    for i, members in enumerate(groups):
        label = members[0].job.placement if members[0].job.placement else (req.on[0] if req.on else None)
        placement = placements[label]
        payload = {"request": req.to_json(), "jobs": [_job_json(p.job) for p in members], "run_id": run_id,
                   "group": i, "cluster": cluster, "driver_git": driver_git}
        opts = dict(placement.task_options(gpu), max_retries=MAX_RETRIES, retry_exceptions=False,
                    name=f"modbench:{members[0].job.model}" + (f"@{label}" if label else ""))
        pending[task.options(**opts).remote(payload)] = (i, members, placement)

    out = Outcome()
    written: set[str] = set()
    drift_seen: set[str] = set()
    stranded_since: dict = {}
    last_check = 0.0
    n_groups = len(groups)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                i, members, placement = pending.pop(ref)
                stranded_since.pop(ref, None)
                try:
                    result = ray.get(ref)
                except RayError as exc:
                    why = first_line(exc, with_type=True)
                    log(f"group {i + 1}/{n_groups} failed after retries: {why}")
                    out.missing += [(p.job.row_id, why) for p in members]
                    continue
                where = f"{result['hostname']} ({str(result['node_id'])[:8]})"
                if result.get("error"):
                    log(f"node {where}: {result['error']}")
                    out.missing += [(p.job.row_id, f"node {where}: {result['error']}") for p in members]
                    continue
                for row, samples in result["rows"]:
                    if row["row_id"] in written:  # a retried group never writes a row twice
                        continue
                    writer.append(row, samples)
                    written.add(row["row_id"])
                    out.rows.append(row)
                    on_row(row)
                for line in _drift(result, where, driver_env, driver_sha):
                    if line not in drift_seen:
                        drift_seen.add(line)
                        out.drift.append(line)
                        log(f"drift: {line}")
                spent = ", ".join(f"{k} {v:.1f} s" for k, v in result.get("seconds", {}).items())
                log(f"group {i + 1}/{n_groups} ({', '.join(dict.fromkeys(p.job.model for p in members))}) "
                    f"done on {where} ({spent})")
            now = time.monotonic()
            if pending and now - last_check >= 2.0:
                last_check = now
                nodes = live_nodes()
                for ref, (i, members, placement) in list(pending.items()):
                    if any(placement.matches(n) for n in nodes):
                        stranded_since.pop(ref, None)
                        continue
                    since = stranded_since.setdefault(ref, now)
                    if now - since >= GRACE_S:
                        ray.cancel(ref, force=True)
                        pending.pop(ref)
                        why = (f"no live node offers {placement.label or SLOT} any more "
                               f"(waited {GRACE_S:.0f} s)")
                        log(f"group {i + 1}/{n_groups}: {why}")
                        out.missing += [(p.job.row_id, why) for p in members]
    except KeyboardInterrupt:
        # Written rows are complete on disk. The remote work stops when the
        # driver disconnects: Ray ends the job and its nodes kill the job's
        # workers. No ray.cancel here: a cancel racing with a task's reply hits
        # a RAY_CHECK in Ray's task manager (2.60) that ends the driver with exit
        # code 1, which would read as "a regression" instead of 130.
        raise
    return out


def _job_json(job) -> dict:
    return asdict(job)


def _drift(result: dict, where: str, driver_env: dict, driver_sha: dict) -> list[str]:
    lines = []
    diffs = [f"{k.replace('_version', '')} {driver_env.get(k) or '-'} here, {v or '-'} there"
             for k, v in result.get("versions", {}).items() if (driver_env.get(k) or "") != (v or "")]
    if diffs:
        lines.append(f"node {where} differs from the driver: " + "; ".join(diffs))
    for row, _ in result["rows"]:
        mine = driver_sha.get(_artifact_key(row))
        theirs = row.get("artifact_sha256")
        if mine and theirs and mine != theirs:
            lines.append(f"node {where} built {row['model']} ({row['variant']}, {row['resolution']}px, "
                         f"batch {row['batch']}) as sha256 {theirs[:12]}, the driver as {mine[:12]}")
    return lines
