"""Bring your own model: run a network of your own beside the registered ones.

Three forms of model spec, mixed freely with registry names:

* ``timm:NAME``             any model timm lists, random init, its default input size;
* ``PATH.onnx``             an ONNX file, timed as it is (never re-exported);
  its input name and shape come from the graph;
* ``module.path:function``  a Python callable returning an ``nn.Module``
  (importable from the current directory or PYTHONPATH), called with the
  ``--model-arg KEY=VALUE`` pairs; input 224 unless asked otherwise;
* ``PATH.py:function``      the same, from a file, loaded under a private module
  name (so two files of one name never meet in sys.modules); its folder is
  importable for its sibling modules.

`resolve_spec` turns a spec into a ModelEntry and registers it for this process,
so the rest of the suite (planning, export, timing, results) treats it like any
registered model. Bad input raises ModelError with one line naming the problem.
"""
from __future__ import annotations

import ast
import copy
import csv
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from modbench.common.errors import ModbenchError, first_line
from modbench.common.fsio import sha256_file

from .registry import ModelEntry, ModelError, PaperFacts, get_entry, load_checkpoint, register, registered

TIMM_PREFIX = "timm:"
USER_SOURCE = "user"  # PaperFacts.source of every bring-your-own entry starts with this
DEFAULT_RESOLUTION = 224
_CALLABLE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
_PY_FILE = re.compile(r"^.+\.py:[A-Za-z_][\w]*$")
# Folders of a repository that hold its importable code when it is not at the top
# (a src layout): a module spec that does not import is looked for there, for a hint.
SOURCE_FOLDERS = ("src", "lib", "python")
MEMORY_SOURCE = "in-memory nn.Module"


def is_spec(text: str) -> bool:
    """Whether `text` names a bring-your-own model rather than a registry name."""
    return (text.startswith(TIMM_PREFIX) or text.lower().endswith(".onnx") or bool(_PY_FILE.match(text))
            or bool(_CALLABLE.match(text)))


def is_file_spec(text: str) -> bool:
    return bool(_PY_FILE.match(text))


def is_user_entry(entry: ModelEntry) -> bool:
    return entry.paper.source.startswith(USER_SOURCE)


# --- command-line values --------------------------------------------------------

def parse_model_args(pairs: list[str] | None) -> dict:
    """KEY=VALUE pairs; values are Python literals where they parse (2, 0.5, True,
    (1, 2)), else strings."""
    out = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ModelError(f"--model-arg takes KEY=VALUE with KEY a Python name, not {pair!r}")
        try:
            out[key] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            out[key] = raw.strip()
    return out


def parse_top1(items: list[str] | None) -> dict[str, float]:
    """NAME=78.4 pairs, or paths of a TSV with lines 'NAME<TAB>TOP1' ('#' comments,
    an optional header line 'name<TAB>top1')."""
    out: dict[str, float] = {}
    for item in items or []:
        if "=" in item and not Path(item).is_file():
            name, _, raw = item.rpartition("=")
            out[name.strip()] = _accuracy(raw, f"--top1 {item}")
            continue
        path = Path(item)
        if not path.is_file():
            raise ModelError(f"--top1 takes NAME=ACCURACY or a TSV file; {item!r} is neither")
        try:  # utf-8-sig: a spreadsheet's export starts with a byte-order mark
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise ModelError(f"--top1 {item}: not a text file (a TSV of NAME<TAB>TOP1 lines)") from None
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        for i, row in enumerate(csv.reader(lines, delimiter="\t"), 1):
            if i == 1 and [c.strip().lower() for c in row[:2]] == ["name", "top1"]:
                continue
            if len(row) < 2:
                raise ModelError(f"{item}: line {i} is not 'NAME<TAB>TOP1'")
            out[row[0].strip()] = _accuracy(row[1], f"{item}: line {i}")
    return out


def _accuracy(raw: str, where: str) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise ModelError(f"{where}: top-1 must be a number, not {raw.strip()!r}") from None
    if not 0 <= v <= 100:
        raise ModelError(f"{where}: top-1 is a percentage, {v} is outside 0-100")
    return v


# --- resolving a spec -------------------------------------------------------------

def resolve_spec(spec: "str | nn.Module", *, model_args: dict | None = None,
                 top1: dict[str, float] | None = None) -> ModelEntry:
    """The entry for a registry name, a bring-your-own spec, or an nn.Module already in
    memory (registered on first use)."""
    if isinstance(spec, nn.Module):
        return module_entry(spec)
    top1 = top1 or {}
    if not is_spec(spec):
        return get_entry(spec)
    if spec.startswith(TIMM_PREFIX):
        entry = _timm_entry(spec[len(TIMM_PREFIX):])
    elif spec.lower().endswith(".onnx"):
        entry = _onnx_entry(spec)
    elif is_file_spec(spec):
        entry = _callable_entry(spec, dict(model_args or {}), from_file=True)
    else:
        entry = _callable_entry(spec, dict(model_args or {}))
    acc = top1.get(spec, top1.get(entry.name))
    if acc is not None:
        entry = replace(entry, paper=replace(entry.paper, top1=acc))
    old = registered(entry.name)
    if old is not None and not is_user_entry(old):
        raise ModelError(f"{spec} would be called {entry.name!r}, a registered model's name")
    # A user's model given again (another file of that name, other --model-args)
    # replaces the earlier one: one run never holds both (see duplicate_names).
    return register(entry, replace=True)


def duplicate_names(specs: list[str], entries: list[ModelEntry]) -> str | None:
    """One line if two specs of one run resolve to the same model name."""
    seen: dict[str, str] = {}
    for spec, e in zip(specs, entries):
        if e.name in seen and seen[e.name] != spec:
            return f"{seen[e.name]} and {spec} would both be called {e.name!r} in the results; rename one"
        seen[e.name] = spec
    return None


def unknown_top1_names(top1: dict[str, float], specs: list[str], names: list[str]) -> list[str]:
    """--top1 names that match no model of the run (a typo would silently drop a point)."""
    return [n for n in top1 if n not in specs and n not in names]


def _facts(name: str, source: str, resolution: int) -> PaperFacts:
    return PaperFacts(paper_name=name, source=f"{USER_SOURCE}: {source}", resolution=resolution)


def _timm_entry(name: str) -> ModelEntry:
    import timm  # seconds; only when a timm model is asked for

    if not name or not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=4, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
        raise ModelError(f"unknown timm model {name!r}{hint}")
    size = timm.get_pretrained_cfg(name).input_size if timm.get_pretrained_cfg(name) else None
    default = int(size[-1]) if size else DEFAULT_RESOLUTION

    def build(variant: str, resolution: int, checkpoint=None):
        model = None
        if resolution != default:
            # Models that bake the input size into the graph (ViTs) take it at build.
            try:
                model = timm.create_model(name, pretrained=False, img_size=resolution)
            except TypeError:
                model = None
        if model is None:
            model = timm.create_model(name, pretrained=False)
        if checkpoint is not None:
            load_checkpoint(model, checkpoint)
        return model

    return ModelEntry(name=TIMM_PREFIX + name, family="timm", builder=build,
                      paper=_facts(TIMM_PREFIX + name, f"timm {version('timm')}", default),
                      source_id=f"timm=={version('timm')}:{name}", tags=("user",))


def _source_folder_hint(spec: str, module_name: str, exc: BaseException) -> str:
    """Where a module that does not import is found under a source folder of the
    current one (src/mynet for `mynet.model:build`), the two ways to name it."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return ""
    top = module_name.split(".")[0]
    if exc.name != top and not module_name.startswith(exc.name + "."):
        return ""  # a module of the user's own code imports something missing
    for folder in SOURCE_FOLDERS:
        base = Path(folder) / Path(*module_name.split("."))
        found = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if found.is_file() or (Path(folder) / top).is_dir():
            return (f"; {folder}/{top} is here: name the file ({found.as_posix()}:{spec.rpartition(':')[2]}) or put "
                    f"{folder} first on the path ({USER_PATH_ENV}={folder})")
    return ""


USER_PATH_ENV = "MODBENCH_PYTHONPATH"


def _user_paths() -> None:
    """Folders named in MODBENCH_PYTHONPATH go first on sys.path: the user's own code
    of a checkout (the gate's base and head) wins over an installed copy of it, for
    the user's specs only (modbench and its libraries are imported before)."""
    for folder in reversed([p for p in os.environ.get(USER_PATH_ENV, "").split(os.pathsep) if p]):
        folder = os.path.abspath(folder)
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)
    importlib.invalidate_caches()


def _import_callable(spec: str):
    module_name, _, attr = spec.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)  # after PYTHONPATH: a local file never shadows an installed package
    _user_paths()
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # user code: sys.exit() at import is bad input too
        raise ModelError(f"{spec}: module {module_name!r} does not import ({describe_exception(exc)})"
                         f"{_source_folder_hint(spec, module_name, exc)}") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ModelError(f"{spec}: module {module_name!r} has no callable {attr!r}")
    return module, fn


def _load_file_callable(spec: str):
    """(module, function) of a PATH.py:function spec, the file loaded under a private
    module name derived from its absolute path (never a name the user's code or this
    suite imports by)."""
    raw, _, attr = spec.rpartition(":")
    path = Path(raw).expanduser().resolve()
    if path.is_dir():
        raise ModelError(f"{spec}: {raw!r} is a folder, not a Python file (a module inside it is "
                         f"{raw}/NAME.py:{attr}, or the dotted form PACKAGE.MODULE:{attr})")
    if not path.is_file():
        raise ModelError(f"{spec}: the file {raw!r} does not exist")
    private = "_modbench_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    _user_paths()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)  # its sibling modules import; after PYTHONPATH, as for module specs
    loader_spec = importlib.util.spec_from_file_location(private, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[private] = module  # dataclasses and pickling look the module up by name
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(private, None)
        raise ModelError(f"{spec}: the file does not import ({first_line(exc, with_type=True)})") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ModelError(f"{spec}: {raw} has no callable {attr!r}")
    return module, fn


def _call(spec: str, fn, args: dict) -> nn.Module:
    try:
        model = fn(**args)
    except (Exception, SystemExit) as exc:
        raise ModelError(f"{spec}({_args_text(args)}) failed: {describe_exception(exc)}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _args_text(args: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sorted(args.items()))


def _callable_entry(spec: str, args: dict, from_file: bool = False) -> ModelEntry:
    module, fn = _load_file_callable(spec) if from_file else _import_callable(spec)
    if from_file:
        spec = spec.replace("\\", "/")  # one name for one file, whichever separator was typed
    _call(spec, fn, args)  # bad input fails here, before anything is exported or timed
    try:
        src = Path(inspect.getsourcefile(fn) or module.__file__)
        digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    except (TypeError, OSError):
        digest = "unknown"

    def build(variant: str, resolution: int, checkpoint=None):
        model = _call(spec, fn, args)
        if checkpoint is not None:
            load_checkpoint(model, checkpoint)
        return model

    label = f"{spec}({_args_text(args)})" if args else spec
    return ModelEntry(name=spec, family="user", builder=build,
                      paper=_facts(label, f"Python callable {label}", DEFAULT_RESOLUTION),
                      source_id=f"user:{label}@{digest}", tags=("user",))


def module_entry(module: nn.Module, name: str | None = None) -> ModelEntry:
    """A registered entry for an nn.Module already in memory (the Python API): each
    build is a copy in eval mode, so timing never changes the caller's object. Its
    export-cache identity is its structure and weights."""
    if not isinstance(module, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, not {type(module).__name__}")
    name = type(module).__name__ if name is None else name
    if not re.fullmatch(r"[A-Za-z0-9_.+=@-]{1,120}", name):
        raise ModelError(f"model name {name!r}: use letters, digits and . _ + = @ - (at most 120)")
    _check_on_cpu(module, name)
    h = hashlib.sha256(repr(module).encode())
    with user_code(f"{name}: reading its state_dict"):
        state = module.state_dict()
    for k, value in state.items():
        h.update(k.encode())
        h.update(_tensor_bytes(value) if isinstance(value, torch.Tensor) else repr(value).encode())
    digest = h.hexdigest()[:16]

    def build(variant: str, resolution: int, checkpoint=None):
        model = copy.deepcopy(module).eval()
        if checkpoint is not None:
            load_checkpoint(model, checkpoint)
        return model

    old = registered(name)
    if old is not None and not is_user_entry(old):
        raise ModelError(f"an in-memory model would be called {name!r}, a registered model's name; "
                         "give it another name")
    entry = ModelEntry(name=name, family="user", builder=build,
                       paper=_facts(name, f"{MEMORY_SOURCE} {type(module).__name__}", DEFAULT_RESOLUTION),
                       source_id=f"user:memory:{name}@{digest}", tags=("user",))
    return register(entry, replace=True)


def _check_on_cpu(module: nn.Module, name: str) -> None:
    """One line for a module whose tensors are not on the CPU: the exporters trace it
    there, and a meta tensor has no values to run at all."""
    devices = {t.device for t in (*module.parameters(), *module.buffers())}
    if any(d.type == "meta" for d in devices):
        raise ModelError(f"{name}: its parameters are on the meta device (shapes without values); "
                         "materialise it on the CPU first (module.to_empty(device='cpu'), then load weights)")
    other = sorted(str(d) for d in devices if d.type != "cpu")
    if other:
        raise ModelError(f"{name}: its tensors are on {', '.join(other)}; pass module.cpu() (modbench "
                         "exports from the CPU; --runtime ort-cuda or torch-cuda times on the GPU)")


def _tensor_bytes(t: torch.Tensor) -> bytes:
    """A tensor's values as bytes, for any dtype and shape (0-d counters, bool masks,
    bfloat16, quantized or sparse)."""
    t = t.detach()
    if t.is_sparse:
        t = t.to_dense()
    if t.is_quantized:
        t = t.int_repr()
    t = t.cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


# --- ONNX files -------------------------------------------------------------------

def read_onnx(path: str | Path):
    """The ModelProto of an ONNX file, checked; ModelError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ONNX file {str(path)!r} does not exist")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelError(f"{str(path)!r} is not a valid ONNX model: {first_line(exc, 160)}") from None
    return model


def onnx_input(model) -> tuple[str, list[int | str | None]]:
    """(name, dims) of the graph's one image input; a dim is an int, or a name (or
    None) where it is dynamic."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelError(f"the ONNX graph has {len(inputs)} inputs; the suite feeds one image tensor")
    inp = inputs[0]
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in inp.type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ModelError(f"the ONNX input {inp.name!r} has shape {dims}; the suite feeds N x 3 x H x W")
    if isinstance(dims[1], int) and dims[1] != 3:
        raise ModelError(f"the ONNX input {inp.name!r} has {dims[1]} channels; the suite feeds 3")
    h, w = dims[2], dims[3]
    if isinstance(h, int) and isinstance(w, int) and h != w:
        raise ModelError(f"the ONNX input {inp.name!r} is {h}x{w}; the suite feeds square images")
    return inp.name, dims


def onnx_param_count(model) -> int:
    return int(sum(int(np.prod(list(t.dims))) for t in model.graph.initializer))


def check_onnx_shape(entry: ModelEntry, batch: int | None, resolution: int | None) -> None:
    """One line if the graph cannot take (batch, resolution): a fixed dim asked to
    change, or a dynamic one not given (None)."""
    _, dims = onnx_input(read_onnx(entry.onnx_path))
    for label, flag, dim, asked in (("batch", "--batch", dims[0], batch),
                                    ("image size", "--resolution", dims[2], resolution),
                                    ("image width", "--resolution", dims[3], resolution)):
        if not isinstance(dim, int) and asked is None:
            raise ModelError(f"{entry.name}: the ONNX input's {label} is dynamic ({dim or '?'}); give {flag}")
        if isinstance(dim, int) and asked is not None and asked != dim:
            raise ModelError(f"{entry.name}: the ONNX graph fixes {label} at {dim}; it cannot run {flag} {asked}")


def _onnx_entry(spec: str) -> ModelEntry:
    path = Path(spec).expanduser().resolve()
    model = read_onnx(path)
    _, dims = onnx_input(model)
    sha = onnx_file_digest(path)
    res = dims[2] if isinstance(dims[2], int) else DEFAULT_RESOLUTION
    return ModelEntry(name=path.name, family="onnx", builder=None, onnx_path=str(path),
                      paper=_facts(path.name, f"ONNX file {path}", res),
                      source_id=f"onnx:sha256:{sha}", tags=("user", "onnx-file"))


# --- user code and probing ----------------------------------------------------------
# Everything a user brings runs under these: whatever it raises (SystemExit included,
# since exit code 1 means "a regression") becomes one line and exit code 2.

def describe_exception(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return first_line(exc, 200, with_type=True)


class user_code:
    """`with user_code("model x: forward"):` turns any exception of the code inside
    (SystemExit included; Ctrl-C and modbench's own errors pass) into one ModelError."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (KeyboardInterrupt, GeneratorExit, ModbenchError)):
            return False
        if isinstance(exc, (Exception, SystemExit)):
            raise ModelError(f"{self.what}: {describe_exception(exc)}") from None
        return False


# ONNX TensorProto element types the suite can feed, as numpy dtype names.
ONNX_ELEMENT_TYPES = {1: "float32", 10: "float16", 11: "float64", 2: "uint8", 3: "int8", 4: "uint16",
                      5: "int16", 6: "int32", 7: "int64", 12: "uint32", 13: "uint64", 9: "bool"}


def input_array(shape, dtype: str = "float32", seed: int = 0):
    """Seeded input of a given element type: noise for floats, 0..255 for uint8 (an
    image), zeros for other integers and bool (indices and masks stay in range)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.standard_normal(shape, dtype=np.float32).astype(dt, copy=False)
    if dt == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return np.zeros(shape, dtype=dt)


def onnx_input_dtype(model) -> str:
    """The numpy name of the image input's element type; ModelError if none fits."""
    name, _ = onnx_input(model)
    inp = next(i for i in model.graph.input if i.name == name)
    elem = inp.type.tensor_type.elem_type
    if elem not in ONNX_ELEMENT_TYPES:
        kind = onnx.TensorProto.DataType.Name(elem) if elem in onnx.TensorProto.DataType.values() else elem
        raise ModelError(f"the ONNX input {name!r} is of type {kind}; the suite feeds "
                         f"{', '.join(sorted(set(ONNX_ELEMENT_TYPES.values())))}")
    return ONNX_ELEMENT_TYPES[elem]


_probed: dict[tuple, str] = {}


def probe_onnx(entry: ModelEntry, batch: int, resolution: int) -> str:
    """Open a user's ONNX file in ONNX Runtime and run it once on the planned input
    (its element type and every dimension from the file, the dynamic ones from the
    plan), so a file the runtime cannot load or run fails in one line before anything
    is planned, built or written. Returns the input's dtype name."""
    key = (entry.onnx_path, batch, resolution)
    if key in _probed:
        return _probed[key]
    proto = read_onnx(entry.onnx_path)
    name, dims = onnx_input(proto)
    dtype = onnx_input_dtype(proto)
    shape = [d if isinstance(d, int) else asked
             for d, asked in zip(dims, (batch, 3, resolution, resolution))]
    where = f"{entry.name}: ONNX Runtime {ort.__version__}"
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        sess = ort.InferenceSession(str(entry.onnx_path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{where} cannot load it: {_ort_reason(exc)}") from None
    feeds = [i for i in sess.get_inputs() if i.name != name]
    if feeds:
        raise ModelError(f"{entry.name}: the graph needs inputs {', '.join(i.name for i in feeds)} besides "
                         f"{name!r}; the suite feeds one image tensor")
    try:
        sess.run(None, {name: input_array(tuple(shape), dtype)})
    except Exception as exc:
        raise ModelError(f"{where} cannot run it on a {'x'.join(map(str, shape))} {dtype} input: "
                         f"{_ort_reason(exc)}") from None
    _probed[key] = dtype
    return dtype


def _ort_reason(exc: BaseException) -> str:
    """ORT's messages carry a '[ONNXRuntimeError] : 10 : INVALID_GRAPH : ' prefix and
    several lines; the last part of the first line says what is wrong."""
    text = first_line(exc, limit=10_000)
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"^Load model from .*? failed:", "", text)
    # Drop ORT's source location and C++ signature ("/src/model.cc:256 ns::Fn(args) ").
    loc = re.match(r"^/\S+:\d+ [^(]*\(", text)
    if loc:
        depth, i = 1, loc.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        text = text[i:]
    return text.strip()[:240]


def onnx_file_digest(path: str | Path) -> str:
    """SHA-256 of an ONNX file with its weights: a file saved with external data keeps
    them in other files, which are hashed too (by name and content, in order)."""
    path = Path(path)

    main = sha256_file(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return main  # read_onnx says what is wrong with it
    names = sorted({e.value for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
                    for e in t.external_data if e.key == "location"})
    if not names:
        return main
    h = hashlib.sha256(main.encode())
    for name in names:
        f = path.parent / name
        h.update(name.encode() + b"\0" + (sha256_file(f) if f.is_file() else "missing").encode())
    return h.hexdigest()
