"""`transinr export`: an `.inr` file as a browser viewer (HTML), an ONNX graph, or a mesh.

- html: one self-contained page evaluating the INR in a WebGL2 shader
  (models/tasks/export_viewer.py).
- onnx: the INR as an ONNX graph (opset 17) with the weights as initializers, built here with
  onnx.helper. Image INRs: input `coords` (N, 2), pixel coordinates (y, x) in (-1, 1), y down,
  and an optional `gains` (2, fourier_count), the per-frequency feature gains of rows and
  columns (default all 1: the raw function; models/core/antialias.py's render_gains gives the ones
  `render` uses for a size); output `rgb` (N, 3) clamped to [0, 1] (grey for a greyscale
  picture); a spatial INR's shift grid is a constant sampled by GridSample (bilinear, border,
  align_corners 0) as `render` samples it. NeRF INRs: input `points` (N, 3), world
  coordinates; outputs `colour` (N, 3) in [0, 1] and `density` (N,), before any ray marching.
- ply / obj: NeRF INRs only, a mesh by marching cubes (models/tasks/export_mesh.py).

Nothing is printed; every problem is a one-line TransInrError.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.errors import TransInrError
from models.io.inr_file import InrFile
from models.io.inr_header import header_to_dict

if TYPE_CHECKING:
    import onnx

FORMATS = {"html": ".html", "onnx": ".onnx", "ply": ".ply", "obj": ".obj"}
SUFFIXES = {"html": (".html", ".htm"), "onnx": (".onnx",), "ply": (".ply",), "obj": (".obj",)}
ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # the IR of opset 17: runtimes from onnxruntime 1.13 on read it
SINE_OMEGA = 30.0  # models/core/inr.py


@dataclass
class ExportOptions:
    """What `export_inr` may be asked besides the format."""

    name: str = ""  # shown as the viewer's title (escaped)
    dtype: str | None = None  # html: float32 or float16 weights; None: the file's own
    resolution: int = 128  # mesh: grid points per side
    threshold: float | None = None  # mesh: density level; None: models/tasks/export_mesh.py's rule
    extent: float | None = None  # mesh: half side of the cube; None: the scene bounds
    device: str = "cpu"
    on_slices: Callable[[int], None] | None = field(default=None, repr=False)


def format_of(fmt: str | None, out: Path | None) -> str:
    """The export format: `fmt` if given, else from the output's suffix."""
    if fmt is None:
        suffix = out.suffix.lower() if out is not None else ""
        matches = [name for name, ending in FORMATS.items() if ending == suffix]
        if not matches:
            raise TransInrError(
                "give --format html, onnx, ply or obj (or an -o name ending in one of them)"
            )
        return matches[0]
    if fmt not in FORMATS:
        raise TransInrError(f"unknown --format '{fmt}'; choose html, onnx, ply or obj")
    return fmt


def check_suffix(fmt: str, path: Path) -> None:
    """The output's name ends as the format's files do."""
    if path.suffix.lower() not in SUFFIXES[fmt]:
        raise TransInrError(
            f"--format {fmt} writes {SUFFIXES[fmt][0]} files; name the output "
            f"{path.stem}{SUFFIXES[fmt][0]}"
        )


def check_export(inr_file: InrFile, fmt: str, options: ExportOptions) -> None:
    """Refuse, before any work, what this file cannot be exported as with these options."""
    if fmt in ("ply", "obj"):
        from models.tasks.export_mesh import check_mesh_options

        check_mesh_options(inr_file, options.resolution, options.threshold, options.extent)
    elif fmt == "onnx":
        require_onnx()
    elif fmt == "html" and options.dtype not in (None, "float32", "float16"):
        raise TransInrError(f"unknown --dtype '{options.dtype}'; choose float32 or float16")


def export_inr(inr_file: InrFile, fmt: str, options: ExportOptions) -> tuple[bytes, dict]:
    """The exported file's bytes and a summary (what it holds, for --json)."""
    check_export(inr_file, fmt, options)
    if fmt == "html":
        from models.tasks.export_viewer import viewer_html

        page = viewer_html(inr_file, options.name, options.dtype).encode("utf-8")
        return page, {"bytes": len(page)}
    if fmt == "onnx":
        data = onnx_model(inr_file).SerializeToString()
        return data, {"bytes": len(data), "opset": ONNX_OPSET}
    if fmt in ("ply", "obj"):
        from models.tasks.export_mesh import extract_mesh, obj_bytes, ply_bytes

        mesh = extract_mesh(
            inr_file, options.resolution, options.threshold, options.extent, options.device,
            options.on_slices,
        )  # fmt: skip
        data = ply_bytes(mesh) if fmt == "ply" else obj_bytes(mesh)
        return data, {"bytes": len(data), "vertices": len(mesh.vertices), "faces": len(mesh.faces)}
    raise TransInrError(f"unknown --format '{fmt}'; choose html, onnx, ply or obj")


# --- ONNX ------------------------------------------------------------------------------------


class GraphBuilder:
    """Nodes and initializers of one ONNX graph, each result named after its operator."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0

    def constant(self, name: str, values: np.ndarray) -> str:
        """An initializer (float32 unless integer) named `name`."""
        array = values if values.dtype.kind == "i" else values.astype(np.float32)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attributes) -> str:
        """Append one node; its output's name (given, or `op_type` and a counter)."""
        self.count += 1
        name = output or f"{op_type.lower()}_{self.count}"
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [name], **attributes))
        return name


def features_node(graph: GraphBuilder, inr_file: InrFile, coords: str, gains: str | None) -> str:
    """Fourier features of `coords` (N, D) in torch's order [cos(c_d w_k)], [sin(c_d w_k)]
    (index d n + k in each half), scaled by `gains` (D, n) if given; the raw coordinates when
    the INR has no Fourier features."""
    from models.core.inr import fourier_frequencies

    config = inr_file.inr
    if config.fourier_count == 0:
        return coords
    frequencies = fourier_frequencies(config).numpy().reshape(1, 1, -1)
    axis = graph.constant("axis_2", np.array([2], dtype=np.int64))
    phases = graph.op(
        "Mul", graph.op("Unsqueeze", coords, axis), graph.constant("frequencies", frequencies)
    )  # (N, D, n)
    cos, sin = graph.op("Cos", phases), graph.op("Sin", phases)
    if gains is not None:
        cos, sin = graph.op("Mul", cos, gains), graph.op("Mul", sin, gains)
    flat = [graph.op("Flatten", part, axis=1) for part in (cos, sin)]
    return graph.op("Concat", *flat, axis=1)


def mlp_layers(inr_file: InrFile) -> list[np.ndarray]:
    """The MLP's weight-and-bias matrices (in + 1, out) as float32 arrays, without the shift grid
    of a spatial INR (its last tensor)."""
    count = len(inr_file.weights) - (1 if inr_file.inr.shift_grid else 0)
    return [weight.detach().float().cpu().numpy() for weight in inr_file.weights[:count]]


def mlp_nodes(
    graph: GraphBuilder, inr_file: InrFile, hidden: str, first_shift: str | None = None
) -> str:
    """The linear layers, the activation between them, out_bias folded into the last bias;
    `first_shift` (N, width), if given, is added to the first layer's output before its
    activation (a spatial INR's sampled shift grid)."""
    config = inr_file.inr
    layers = mlp_layers(inr_file)
    last = len(layers) - 1
    if config.activation == "sine":
        omega = graph.constant("sine_omega", np.array(SINE_OMEGA, dtype=np.float32))
    for index, matrix in enumerate(layers):
        bias = matrix[-1] + (config.out_bias if index == last else 0.0)
        hidden = graph.op(
            "Add",
            graph.op("MatMul", hidden, graph.constant(f"layer{index}.weight", matrix[:-1])),
            graph.constant(f"layer{index}.bias", bias),
        )
        if index == 0 and first_shift is not None:
            hidden = graph.op("Add", hidden, first_shift)
        if index < last and config.activation == "sine":
            hidden = graph.op("Sin", graph.op("Mul", hidden, omega))
        elif index < last:
            hidden = graph.op("Relu", hidden)
    return hidden


def shift_grid_nodes(graph: GraphBuilder, inr_file: InrFile, coords: str) -> str:
    """A spatial INR's shift grid sampled at `coords` (N, 2) -> (N, width), as
    models/core/inr.py's sample_shift_grid: GridSample, bilinear, border padding,
    align_corners 0, on (x, y) normalised to (-1, 1) over (shift_low, shift_high)."""
    config = inr_file.inr
    cells, width = config.shift_grid, config.width
    grid = inr_file.weights[-1].detach().float().cpu().numpy()  # (cells * cells, width)
    image = grid.T.reshape(1, width, cells, cells)  # (1, width, y, x)
    scale = 2.0 / (config.shift_high - config.shift_low)
    swap = np.array([[0.0, scale], [scale, 0.0]], dtype=np.float32)  # (y, x) -> (x, y) * scale
    offset = np.full(2, -config.shift_low * scale - 1.0, dtype=np.float32)
    normalised = graph.op(
        "Add",
        graph.op("MatMul", coords, graph.constant("shift_grid.swap", swap)),
        graph.constant("shift_grid.offset", offset),
    )  # (N, 2): (x, y) in (-1, 1) over the grid
    points_shape = graph.constant("shift_grid.points_shape", np.array([1, 1, -1, 2], np.int64))
    sampled = graph.op(
        "GridSample",
        graph.constant("shift_grid", image),
        graph.op("Reshape", normalised, points_shape),  # (1, 1, N, 2)
        mode="bilinear",
        padding_mode="border",
        align_corners=0,
    )  # (1, width, 1, N)
    rows_shape = graph.constant("shift_grid.rows_shape", np.array([width, -1], np.int64))
    return graph.op("Transpose", graph.op("Reshape", sampled, rows_shape), perm=[1, 0])


def image_graph(graph: GraphBuilder, inr_file: InrFile) -> tuple[list, list]:
    """coords (N, 2) [+ gains (2, n)] -> rgb (N, 3); returns (inputs, outputs) value infos."""
    helper, onnx_float = graph.helper, 1  # TensorProto.FLOAT
    count = inr_file.inr.fourier_count
    inputs = [helper.make_tensor_value_info("coords", onnx_float, ["N", 2])]
    gains = None
    if count:
        gains = graph.constant("gains", np.ones((2, count), dtype=np.float32))
        inputs.append(helper.make_tensor_value_info("gains", onnx_float, [2, count]))
    shift = shift_grid_nodes(graph, inr_file, "coords") if inr_file.inr.shift_grid else None
    features = features_node(graph, inr_file, "coords", gains)
    output = mlp_nodes(graph, inr_file, features, shift)
    low = graph.constant("zero", np.array(0.0, dtype=np.float32))
    high = graph.constant("one", np.array(1.0, dtype=np.float32))
    if inr_file.header.greyscale:
        clipped = graph.op("Clip", output, low, high)
        grey = graph.constant("grey", np.full((3, 3), 1.0 / 3.0, dtype=np.float32))
        graph.op("MatMul", clipped, grey, output="rgb")
    else:
        graph.op("Clip", output, low, high, output="rgb")
    return inputs, [helper.make_tensor_value_info("rgb", onnx_float, ["N", 3])]


def nerf_graph(graph: GraphBuilder, inr_file: InrFile) -> tuple[list, list]:
    """points (N, 3) -> colour (N, 3), density (N,); returns (inputs, outputs) value infos."""
    helper, onnx_float = graph.helper, 1
    output = mlp_nodes(graph, inr_file, features_node(graph, inr_file, "points", None))
    starts = [graph.constant(name, np.array([v], dtype=np.int64)) for name, v in
              (("at_0", 0), ("at_3", 3), ("at_4", 4), ("axis_1", 1))]  # fmt: skip
    rgb = graph.op("Slice", output, starts[0], starts[1], starts[3])
    graph.op("Sigmoid", rgb, output="colour")
    sigma = graph.op("Slice", output, starts[1], starts[2], starts[3])
    graph.op("Squeeze", graph.op("Relu", sigma), starts[3], output="density")
    inputs = [helper.make_tensor_value_info("points", onnx_float, ["N", 3])]
    outputs = [
        helper.make_tensor_value_info("colour", onnx_float, ["N", 3]),
        helper.make_tensor_value_info("density", onnx_float, ["N"]),
    ]
    return inputs, outputs


ONNX_DOCS = {
    "image": "coords (N, 2): pixel coordinates (y, x) in (-1, 1), y down; gains (2, n), "
    "optional: per-frequency feature gains of rows and columns (all 1: the raw function); "
    "rgb (N, 3) in [0, 1]",
    "nerf": "points (N, 3): world coordinates; colour (N, 3) in [0, 1], density (N,) >= 0, "
    "before ray marching",
}


def require_onnx() -> None:
    """A one-line error naming the install when the onnx package is missing."""
    if importlib.util.find_spec("onnx") is None:
        raise TransInrError("ONNX export needs the onnx package: pip install 'transinr[export]'")


def onnx_model(inr_file: InrFile) -> onnx.ModelProto:
    """The INR as a checked ONNX model; its metadata holds the task and the header (JSON)."""
    require_onnx()
    import onnx

    graph = GraphBuilder()
    build = image_graph if inr_file.task == "image" else nerf_graph
    inputs, outputs = build(graph, inr_file)
    body = graph.helper.make_graph(
        graph.nodes, f"transinr_{inr_file.task}_inr", inputs, outputs, graph.initializers,
        doc_string=ONNX_DOCS[inr_file.task],
    )  # fmt: skip
    model = graph.helper.make_model(
        body,
        opset_imports=[graph.helper.make_opsetid("", ONNX_OPSET)],
        producer_name="transinr",
        ir_version=ONNX_IR_VERSION,
    )
    metadata = {"task": inr_file.task, "header": json.dumps(header_to_dict(inr_file.header))}
    for key, value in metadata.items():
        model.metadata_props.add(key=f"transinr.{key}", value=value)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        first = str(error).strip().splitlines()[0][:200]
        raise TransInrError(f"the ONNX graph did not pass onnx's checker ({first})") from None
    return model
