"""The hostile inputs of issue 20, built in one place for tests/test_hostile.py and
tools/hostile_cases.sh: ONNX files the runtime refuses or must adapt to, user code that
returns odd outputs or exits, a helper module whose width the export cache must notice.

    python -m tools.hostile_cases files DIR [--size 64]   # every file hostile_cases.sh runs on
    python -m tools.hostile_cases helper DIR --width W    # (re)write helper_arch.py, uses_helper.py
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import onnx
from onnx import TensorProto, helper


def onnx_file(path: Path, elem: int = TensorProto.FLOAT, dims=(1, 3, 32, 32), *, ir: int = 8, opset: int = 17,
              domain: str = "", reshape_to: tuple[int, ...] | None = None, fails_when_run: bool = False) -> Path:
    """A one-node graph reducing its image input to a scalar, made hostile on request:
    another input type (`elem`, cast first), an IR version or opset the runtime may not
    read, a custom op of `domain`, a Reshape to `reshape_to` that cannot hold the image,
    or a Gather of channel 10 of 3 that loads and then fails when run."""
    dims = list(dims)
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    out_dims: list = []
    if fails_when_run:
        nodes = [helper.make_node("Constant", [], ["i"], value=helper.make_tensor("i", TensorProto.INT64, [1], [10])),
                 helper.make_node("Gather", ["x", "i"], ["y"], axis=1)]
        out_dims = [dims[0], 1, *dims[2:]]
    else:
        nodes, src = [], "x"
        if elem != TensorProto.FLOAT:
            nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
            src = "xf"
        if reshape_to is not None:
            shape = helper.make_tensor("s", TensorProto.INT64, [len(reshape_to)], list(reshape_to))
            nodes += [helper.make_node("Constant", [], ["s"], value=shape),
                      helper.make_node("Reshape", [src, "s"], ["y"])]
            out_dims = [f"d{k}" for k in range(len(reshape_to))]
        elif domain:
            nodes.append(helper.make_node("FancyOp", [src], ["y"], domain=domain))
        else:
            nodes.append(helper.make_node("ReduceMean", [src], ["y"], keepdims=0))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", elem, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = ir
    onnx.save(model, str(path))
    return path


def write_user_nets(folder: Path) -> Path:
    """hostile_nets.py: callables whose module returns a nested tuple, a dict, a string,
    or raises, and callables that call sys.exit."""
    path = Path(folder) / "hostile_nets.py"
    path.write_text(textwrap.dedent("""
        import sys
        from torch import nn
        class Two(nn.Module):
            def __init__(self):
                super().__init__()
                self.c = nn.Conv2d(3, 4, 3, stride=4)
            def forward(self, x):
                y = self.c(x)
                return y.mean((2, 3)), [y.amax((2, 3))]
        class Dict(Two):
            def forward(self, x):
                y = self.c(x)
                return {"boxes": y.mean((2, 3)), "scores": y.amax((2, 3))}
        class Broken(Two):
            def forward(self, x):
                return [][1]
        class Text(Two):
            def forward(self, x):
                return "not a tensor"
        def tuple_out(): return Two()
        def dict_out(): return Dict()
        def index_error(): return Broken()
        def text_out(): return Text()
        def exit1(): sys.exit(1)
        def exit0(): sys.exit(0)
    """))
    return path


def write_helper_module(folder: Path, width: int, scale: float = 1.0) -> None:
    """uses_helper.py, whose build() takes its network from helper_arch.py: rewriting the
    helper with another width (or scale) changes the graph, not the file holding build()."""
    folder = Path(folder)
    (folder / "helper_arch.py").write_text(textwrap.dedent(f"""
        from torch import nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.c = nn.Conv2d(3, {width}, 3, stride=4)
                self.scale = {scale}  # a plain attribute: no parameter shows it
            def forward(self, x):
                return self.c(x).mean((2, 3)) * self.scale
    """))
    (folder / "uses_helper.py").write_text("from helper_arch import Net\ndef build():\n    return Net()\n")


def binary_file(path: Path) -> Path:
    """Bytes that are not text in any UTF encoding (where a --top1 table is expected)."""
    Path(path).write_bytes(bytes(range(128, 256)))
    return path


def write_case_files(folder: Path, size: int = 64) -> None:
    """Every input tools/hostile_cases.sh runs on, images of size x size."""
    # torch only for the checkpoint: the ONNX files need none of it
    import torch

    folder = Path(folder)
    image = (1, 3, size, size)
    write_helper_module(folder, 8)
    write_user_nets(folder)
    onnx_file(folder / "int64.onnx", TensorProto.INT64, image)
    onnx_file(folder / "float16.onnx", TensorProto.FLOAT16, image)
    onnx_file(folder / "ir14.onnx", dims=image, ir=14)  # what onnx 1.23 may write; ORT 1.31 reads up to 13
    onnx_file(folder / "opset27.onnx", dims=image, ir=13, opset=27)
    onnx_file(folder / "custom.onnx", dims=image, domain="com.example")
    onnx_file(folder / "fails.onnx", dims=image, reshape_to=(7, -1))
    onnx_file(folder / "runfails.onnx", dims=image, fails_when_run=True)
    onnx_file(folder / "dynh.onnx", dims=(1, 3, "h", 48))
    for name in ("my model.onnx", "café.onnx", "ok.onnx", "=1+1.onnx"):
        onnx_file(folder / name, dims=image)
    torch.save({"c.weight": "text"}, folder / "bad_ckpt.pt")
    binary_file(folder / "top1.bin")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    files = sub.add_parser("files", help="every file hostile_cases.sh runs on")
    files.add_argument("dir", type=Path)
    files.add_argument("--size", type=int, default=64, help="image height and width of the ONNX files")
    grow = sub.add_parser("helper", help="(re)write helper_arch.py and uses_helper.py")
    grow.add_argument("dir", type=Path)
    grow.add_argument("--width", type=int, required=True)
    args = ap.parse_args(argv)
    if not args.dir.is_dir():
        ap.exit(2, f"tools.hostile_cases: {args.dir} is not a folder\n")
    if args.what == "files":
        write_case_files(args.dir, args.size)
    else:
        write_helper_module(args.dir, args.width)
    return 0


if __name__ == "__main__":
    sys.exit(main())
