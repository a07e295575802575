"""The browser viewer of `transinr export --format html`: one self-contained HTML page that
evaluates the INR per pixel in a WebGL2 fragment shader.

The page is `models/tasks/viewer.html` with one JSON object put in: the weights (base64 of float32
or float16 arrays, uploaded as one RGBA32F / RGBA16F texture), the Fourier frequencies, the
header numbers the viewer needs, and a GLSL ES 3.00 fragment shader written here for the
file's architecture. Image INRs are drawn through a view box with the anti-aliasing rule of
models/core/antialias.py (the page computes the per-frequency gains for its own pixel footprint);
NeRF INRs are ray-marched exactly as models/nerf/volume_rendering.py does (uniform depths from near
to far, last interval 1e-3, white background).

Texture layout, four weights a texel: layer l's matrix is stored output by output, each output
j as `in4` texels holding inputs 4 ib .. 4 ib + 3 (zero-padded), then its biases, four outputs
a texel. The first layer's inputs are reordered to the shader's feature blocks: for each group
of four frequencies kb, [cos(c0 w), cos(c1 w), .., sin(c0 w), sin(c1 w), ..] with w the four
frequencies, so the shader computes four features with one vec4 operation. A spatial INR's
shift grid follows the last layer: cell (r, c) (r the row, y) as out4 texels of its first-layer
shifts, at grid offset + (r * cells + c) * out4; the shader adds its bilinear sample (the four
nearest cell centres, coordinates clamped to the outermost ones: grid_sample's border rule
with align_corners=False) to the first layer's output before the activation.

Every string taken from the file reaches the page only inside the JSON object, with `<`, `>`
and `&` written as \\u escapes: nothing in a header can close the script element.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np

from models.core.config import INRConfig
from models.errors import TransInrError
from models.io.inr_file import InrFile

MAX_TEXTURE_WIDTH = 2048  # texels a row (WebGL2 guarantees textures of 2048 x 2048)
MAX_TEXTURE_ROWS = 4096  # most browsers allow 16384; 2048 x 4096 texels is 33 M weights
MAX_VECTOR_BLOCKS = 512  # vec4s of one layer's input or output in the shader (2048 numbers)
EMBED_DTYPES = ("float32", "float16")


@dataclass
class LayerLayout:
    """Where one layer lives in the weight texture (texel offsets) and its padded sizes."""

    weights: int  # first texel of the matrix: output j, input block ib at weights + j * in4 + ib
    biases: int  # first texel of the biases, four outputs a texel
    in4: int  # input blocks of four
    out4: int  # output blocks of four


@dataclass
class GridLayout:
    """Where a spatial INR's shift grid lives in the weight texture, and what it spans."""

    offset: int  # first texel: cell (r, c)'s shift block jb at offset + (r * cells + c) * out4 + jb
    out4: int  # texels a cell (the first layer's output blocks)
    cells: int  # cells per side
    low: float  # coordinate of the grid's first edge (both axes)
    high: float  # coordinate of its last edge


@dataclass
class TextureLayout:
    """Where everything lives in the weight texture."""

    layers: list[LayerLayout]
    shift_grid: GridLayout | None  # None: a plain INR


def ceil4(count: int) -> int:
    """Blocks of four needed for `count` numbers."""
    return (count + 3) // 4


def first_layer_rows(config: INRConfig) -> np.ndarray:
    """For each shader input slot of the first layer, the row of the layer's matrix it reads
    (-1: a padding slot with zero weight). Slot 4 b + c of feature block b = 2 D kb + p holds
    frequency k = 4 kb + c of part p: cos of coordinate p for p < D, sin of p - D after; the
    torch feature order is [cos(c_d w_k)] at d n + k, then [sin(c_d w_k)] at D n + d n + k,
    i.e. row p n + k. Raw coordinates (no Fourier features): slot d reads row d."""
    dims, count = config.coord_dim, config.fourier_count
    if count == 0:
        return np.array([d if d < dims else -1 for d in range(4)])
    slots = np.arange(2 * dims * ceil4(count) * 4)
    block, component = slots // 4, slots % 4
    group, part = block // (2 * dims), block % (2 * dims)
    frequency = 4 * group + component
    return np.where(frequency < count, part * count + frequency, -1)


def layer_texels(matrix: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """One (in + 1, out) weight-and-bias matrix -> (weight texels (out4 * 4 * in4, 4), bias
    texels (out4, 4), in4, out4), inputs taken from `rows` (-1: zero)."""
    fan_out = matrix.shape[1]
    in4, out4 = len(rows) // 4, ceil4(fan_out)
    padded = np.zeros((in4 * 4, out4 * 4), dtype=np.float32)
    valid = rows >= 0
    padded[valid, :fan_out] = matrix[rows[valid]]
    weights = padded.T.reshape(out4 * 4 * in4, 4)
    biases = np.zeros(out4 * 4, dtype=np.float32)
    biases[:fan_out] = matrix[-1]
    return weights, biases.reshape(out4, 4), in4, out4


def grid_texels(grid: np.ndarray) -> np.ndarray:
    """A shift grid (cells, width) -> texels (cells * out4, 4): each cell's shifts, zero-padded
    to whole texels."""
    cells, width = grid.shape
    padded = np.zeros((cells, ceil4(width) * 4), dtype=np.float32)
    padded[:, :width] = grid
    return padded.reshape(-1, 4)


def pack_weights(inr_file: InrFile) -> tuple[np.ndarray, TextureLayout]:
    """All layers, then the shift grid if any, as texels (T, 4) float32, and where each is."""
    config = inr_file.inr
    tensors = [weight.detach().float().cpu().numpy() for weight in inr_file.weights]
    matrices = tensors[:-1] if config.shift_grid else tensors
    chunks: list[np.ndarray] = []
    layouts: list[LayerLayout] = []
    offset = 0
    for index, matrix in enumerate(matrices):
        fan_in = matrix.shape[0] - 1
        rows = first_layer_rows(config) if index == 0 else np.arange(ceil4(fan_in) * 4)
        rows = np.where(rows < fan_in, rows, -1)
        texels, biases, in4, out4 = layer_texels(matrix, rows)
        if max(in4, out4) > MAX_VECTOR_BLOCKS:
            raise TransInrError(
                f"layer {index} has {max(in4, out4) * 4} inputs or outputs, more than the "
                f"browser viewer handles ({MAX_VECTOR_BLOCKS * 4}); export onnx instead"
            )
        layouts.append(LayerLayout(offset, offset + len(texels), in4, out4))
        chunks += [texels, biases]
        offset += len(texels) + len(biases)
    grid = None
    if config.shift_grid:
        chunks.append(grid_texels(tensors[-1]))
        grid = GridLayout(offset, layouts[0].out4, config.shift_grid, config.shift_low,
                          config.shift_high)  # fmt: skip
    return np.concatenate(chunks), TextureLayout(layouts, grid)


def texture_shape(texel_count: int) -> tuple[int, int]:
    """(width, rows) of the weight texture: a power-of-two width up to 2048."""
    width = min(MAX_TEXTURE_WIDTH, 1 << max(0, math.ceil(math.log2(max(texel_count, 1)))))
    rows = math.ceil(texel_count / width)
    if rows > MAX_TEXTURE_ROWS:
        raise TransInrError(
            f"the INR has {texel_count * 4} weights, too many for the browser viewer; "
            "export onnx instead"
        )
    return width, rows


# --- GLSL ------------------------------------------------------------------------------------

GLSL_HEAD = """#version 300 es
precision highp float;
precision highp int;
precision highp sampler2D;
uniform highp sampler2D u_weights;  // the INR's layers, four weights a texel
uniform highp sampler2D u_fourier;  // row 0: frequencies; rows 1, 2: row and column gains
uniform vec2 u_size;  // the render target in pixels
out vec4 o_colour;

vec4 weight(int i) { return texelFetch(u_weights, ivec2(i & TEXTURE_MASK, i >> TEXTURE_SHIFT), 0); }

// p minus the nearest multiple of 2 pi, in two steps (6.28125 times an integer below 2^15 is
// exact), so that cos and sin of large phases are as exact as the float phase itself.
vec4 wrap(vec4 p) {
    vec4 turns = floor(p * 0.15915494309189535 + 0.5);
    return (p - turns * 6.28125) - turns * 0.0019353071795864769;
}
"""

ACTIVATIONS = {
    "relu": "vec4 act(vec4 v) { return max(v, 0.0); }\n",
    "sine": f"vec4 act(vec4 v) {{ return sin(wrap({30.0!r} * v)); }}\n",
}


def feature_code(config: INRConfig, gains: bool) -> str:
    """GLSL that fills h0 with the first layer's inputs from `coords` (the shader's layout)."""
    dims, count = config.coord_dim, config.fourier_count
    if count == 0:
        padding = ", 0.0" * (4 - dims)
        return f"    h0[0] = vec4(coords{padding});\n"
    axes = "xyz"[:dims]
    lines = [
        f"    for (int kb = 0; kb < {ceil4(count)}; kb++) {{",
        "        vec4 w = texelFetch(u_fourier, ivec2(kb, 0), 0);",
    ]
    for d, axis in enumerate(axes):
        lines.append(f"        vec4 p{d} = wrap(coords.{axis} * w);")
        if gains:
            lines.append(f"        vec4 g{d} = texelFetch(u_fourier, ivec2(kb, {d + 1}), 0);")
    for d in range(dims):
        scale = f" * g{d}" if gains else ""
        lines.append(f"        h0[{2 * dims} * kb + {d}] = cos(p{d}){scale};")
        lines.append(f"        h0[{2 * dims} * kb + {dims + d}] = sin(p{d}){scale};")
    lines.append("    }")
    return "\n".join(lines) + "\n"


def shift_grid_code(grid: GridLayout) -> str:
    """GLSL that finds, for `coords` (y, x), the first texels of the four cells around it
    (`corner`) and their bilinear weights (`share`): grid_sample's rule with border padding and
    align_corners=False, coordinates in cell-centre units clamped to the outermost centres."""
    low, scale = glsl_float(grid.low), glsl_float(grid.cells / (grid.high - grid.low))
    last = glsl_float(grid.cells - 1)
    return f"""    // shift grid: the four cell centres around coords, clamped to the border cells
    vec2 cell = clamp((coords - ({low})) * {scale} - 0.5, 0.0, {last});  // cell-centre units
    vec2 below = floor(cell);
    vec2 f = cell - below;  // (y, x) fractions
    ivec2 c0 = ivec2(below);
    ivec2 c1 = min(c0 + 1, {grid.cells - 1});
    ivec4 corner = {grid.offset} + {grid.out4} * ivec4(c0.x * {grid.cells} + c0.y,
        c0.x * {grid.cells} + c1.y, c1.x * {grid.cells} + c0.y, c1.x * {grid.cells} + c1.y);
    vec4 share = vec4((1.0 - f.x) * (1.0 - f.y), (1.0 - f.x) * f.y, f.x * (1.0 - f.y), f.x * f.y);
"""


SHIFT_LINE = """        acc += share.x * weight(corner.x + jb) + share.y * weight(corner.y + jb)
             + share.z * weight(corner.z + jb) + share.w * weight(corner.w + jb);
"""


def layer_code(
    layout: LayerLayout, source: str, target: str, last: bool, shifted: bool = False
) -> str:
    """GLSL of one linear layer from array `source` into `target` (activation unless last);
    `shifted`: plus the shift grid's sample (`corner`, `share`) before the activation."""
    in4, w = layout.in4, layout.weights
    result = "acc" if last else "act(acc)"
    shift = SHIFT_LINE if shifted else ""
    return f"""    for (int jb = 0; jb < {layout.out4}; jb++) {{
        vec4 acc = weight({layout.biases} + jb);
        int row = {w} + jb * {4 * in4};
        for (int ib = 0; ib < {in4}; ib++) {{
            vec4 x = {source}[ib];
            acc += vec4(dot(x, weight(row + ib)), dot(x, weight(row + {in4} + ib)),
                        dot(x, weight(row + {2 * in4} + ib)), dot(x, weight(row + {3 * in4} + ib)));
        }}
{shift}        {target}[jb] = {result};
    }}
"""


def inr_function(config: INRConfig, layout: TextureLayout, gains: bool) -> str:
    """GLSL `vec4 inr(coords)`: the first four outputs of the INR (before out_bias)."""
    coord_type = "vec2" if config.coord_dim == 2 else "vec3"
    layers, grid = layout.layers, layout.shift_grid
    size = max(max(layer.in4, layer.out4) for layer in layers)
    code = [f"vec4 inr({coord_type} coords) {{", f"    vec4 h0[{size}];", f"    vec4 h1[{size}];"]
    code.append(feature_code(config, gains))
    if grid is not None:
        code.append(shift_grid_code(grid))
    for index, layer in enumerate(layers):
        source, target, last = f"h{index % 2}", f"h{(index + 1) % 2}", index == len(layers) - 1
        shifted = index == 0 and grid is not None
        code.append(f"    // layer {index}\n" + layer_code(layer, source, target, last, shifted))
    code.append(f"    return h{len(layers) % 2}[0];\n}}\n")
    return "\n".join(code)


IMAGE_MAIN = """
uniform vec4 u_box;  // (y0, x0, y1, x1) of the render target in INR coordinates
uniform vec4 u_content;  // the picture's content box; outside it, the page background
void main() {
    float row = u_size.y - gl_FragCoord.y;  // pixel row from the top, + 0.5
    vec2 yx = vec2(u_box.x + (u_box.z - u_box.x) * row / u_size.y,
                   u_box.y + (u_box.w - u_box.y) * gl_FragCoord.x / u_size.x);
    if (yx.x < u_content.x || yx.x > u_content.z || yx.y < u_content.y || yx.y > u_content.w) {
        o_colour = vec4(BACKGROUND, 1.0);
        return;
    }
    vec3 rgb = clamp(inr(yx).xyz + OUT_BIAS, 0.0, 1.0);
    GREY_LINE
    o_colour = vec4(rgb, 1.0);
}
"""

NERF_MAIN = """
uniform mat3 u_rotation;  // camera-to-world rotation (OpenGL axes: the camera looks down -z)
uniform vec3 u_origin;  // camera position
uniform float u_focal;  // pixels
uniform int u_samples;  // depths from near to far
void main() {
    vec2 pixel = vec2(gl_FragCoord.x, u_size.y - gl_FragCoord.y);  // x + 0.5, y + 0.5 from top
    vec3 camera = vec3((pixel.x - 0.5 * u_size.x) / u_focal, -(pixel.y - 0.5 * u_size.y) / u_focal,
                       -1.0);
    vec3 direction = u_rotation * camera;
    float step = (FAR - NEAR) / float(max(u_samples - 1, 1));
    vec3 rgb = vec3(0.0);
    float opacity = 0.0;
    float transmittance = 1.0;
    for (int s = 0; s < u_samples; s++) {
        float depth = NEAR + step * float(s);
        float delta = s == u_samples - 1 ? 1e-3 : step;
        vec4 value = inr(u_origin + direction * depth) + OUT_BIAS;
        float density = max(value.w, 0.0);
        vec3 colour = 1.0 / (1.0 + exp(-value.xyz));
        float alpha = 1.0 - exp(-density * delta);
        float share = alpha * transmittance;
        rgb += share * colour;
        opacity += share;
        transmittance *= 1.0 - alpha + 1e-10;
        if (transmittance < 1e-5) break;  // what is left adds under 1e-5 of a colour
    }
    o_colour = vec4(clamp(rgb + (1.0 - opacity), 0.0, 1.0), 1.0);
}
"""

BACKGROUND = (0.92, 0.92, 0.92)  # the image viewer's background outside the picture


def glsl_float(value: float) -> str:
    """A float literal GLSL accepts (always with a point or exponent)."""
    text = repr(float(value))
    return text if any(c in text for c in ".e") else text + ".0"


def fragment_shader(inr_file: InrFile, layout: TextureLayout, texture_width: int) -> str:
    """The whole fragment shader for this INR: texture constants, the INR, the task's main."""
    config = inr_file.inr
    head = GLSL_HEAD.replace("TEXTURE_MASK", str(texture_width - 1))
    head = head.replace("TEXTURE_SHIFT", str(texture_width.bit_length() - 1))
    body = ACTIVATIONS[config.activation] + inr_function(config, layout, inr_file.task == "image")
    bias = glsl_float(config.out_bias)
    if inr_file.task == "image":
        grey = "rgb = vec3(dot(rgb, vec3(1.0 / 3.0)));" if inr_file.header.greyscale else ""
        main = IMAGE_MAIN.replace("GREY_LINE", grey).replace("OUT_BIAS", bias)
        main = main.replace("BACKGROUND", "vec3({}, {}, {})".format(*map(glsl_float, BACKGROUND)))
    else:
        header = inr_file.header
        main = NERF_MAIN.replace("OUT_BIAS", bias)
        main = main.replace("NEAR", glsl_float(header.near)).replace("FAR", glsl_float(header.far))
    return head + body + main


# --- the page --------------------------------------------------------------------------------


def base64_array(values: np.ndarray) -> str:
    """Little-endian bytes of a numeric array as base64 text."""
    return base64.b64encode(values.astype(values.dtype.newbyteorder("<")).tobytes()).decode()


def safe_json(value: object) -> str:
    """JSON that can stand inside a <script> element: ASCII only, and <, >, & as \\u escapes
    (so no header string can close the element or open a comment)."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def file_dtype(inr_file: InrFile) -> str:
    """float16 when every layer is stored as float16, else float32."""
    import torch

    return "float16" if all(w.dtype == torch.float16 for w in inr_file.weights) else "float32"


def viewer_data(inr_file: InrFile, name: str, dtype: str | None = None) -> dict:
    """Everything the page needs, JSON-ready: weights, frequencies, shader and header numbers."""
    from models.core.inr import fourier_frequencies

    dtype = dtype or file_dtype(inr_file)
    if dtype not in EMBED_DTYPES:
        raise TransInrError(f"unknown --dtype '{dtype}'; choose float32 or float16")
    texels, layout = pack_weights(inr_file)
    width, rows = texture_shape(len(texels))
    padded = np.zeros((width * rows, 4), dtype=np.float32)
    padded[: len(texels)] = texels
    if dtype == "float16" and not np.isfinite(padded.astype(np.float16)).all():
        raise TransInrError("the weights overflow float16; export with --dtype float32")
    config = inr_file.inr
    frequencies = fourier_frequencies(config).numpy() if config.fourier_count else np.zeros(0)
    return {
        "task": inr_file.task,
        "name": name,
        "texture": {"width": width, "rows": rows, "dtype": dtype},
        "weights": base64_array(padded.astype(np.float16 if dtype == "float16" else np.float32)),
        "frequencies": [float(f) for f in frequencies.astype(np.float32)],
        "shader": fragment_shader(inr_file, layout, width),
        "shift_grid": grid_fields(layout.shift_grid),
        "header": header_fields(inr_file),
        "parameters": inr_file.parameter_count(),
    }


def grid_fields(grid: GridLayout | None) -> dict | None:
    """Where the shift grid is in the weight texture and what it spans (None: no grid)."""
    if grid is None:
        return None
    return {"offset": grid.offset, "texels_per_cell": grid.out4, "cells": grid.cells,
            "low": grid.low, "high": grid.high}  # fmt: skip


def header_fields(inr_file: InrFile) -> dict:
    """The header numbers the page uses, and the strings it shows (as text, never as HTML)."""
    header = inr_file.header
    common = {"source_model": header.source_model, "encode_psnr": header.encode_psnr}
    if inr_file.task == "image":
        return {
            **common,
            "native_width": header.native_width,
            "native_height": header.native_height,
            "input_size": header.input_size,
            "content_box": list(header.content_box),
            "source": header.source_image,
        }
    return {
        **common,
        "near": header.near,
        "far": header.far,
        "samples": header.samples,
        "focal": header.focal,
        "view_size": header.view_size,
        "camera_radius": header.camera_radius,
        "source": header.source_views,
    }


def viewer_template() -> str:
    """models/tasks/viewer.html, the page with its script; `/*TRANSINR_DATA*/` marks the data."""
    return resources.files("models.tasks").joinpath("viewer.html").read_text(encoding="utf-8")


def viewer_html(inr_file: InrFile, name: str = "", dtype: str | None = None) -> str:
    """The self-contained viewer page of an INR (`name`: shown as its title, escaped)."""
    template = viewer_template()
    marker = "/*TRANSINR_DATA*/"
    if template.count(marker) != 1:
        raise TransInrError("the viewer template is damaged; reinstall transinr")
    return template.replace(marker, safe_json(viewer_data(inr_file, name, dtype)))
