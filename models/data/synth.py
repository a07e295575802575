"""Synthetic ShapeNet-like objects (chairs, cars, lamps) made of boxes, cylinders and spheres,
ray-traced analytically with the `models.nerf.rays` cameras. Written in the paper's "learnit" layout
(like the real ShapeNet renders), they are the default training data for view synthesis.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.nerf.rays import camera_rays, focal_from_angle, look_at_pose

CATEGORIES = ("chairs", "cars", "lamps")
CAMERA_ANGLE_X = 0.6911112070083618  # the real data's horizontal field of view (radians)
RADIUS = 4.0  # camera distance from the origin (near 2, far 6)
EXTENT = 0.58  # default largest half extent of an object: inside [-0.6, 0.6]^3
AMBIENT, DIFFUSE = 0.35, 0.65
LIGHT = (0.35, -0.45, 0.82)  # world direction towards the light (normalised when used)
_INF = float("inf")


@dataclass(frozen=True)
class Primitive:
    """One solid with a flat RGB colour in [0, 1].

    kind "box": axis-aligned, `half` = half extents (x, y, z).
    kind "sphere": `radius`.
    kind "cylinder": along axis `axis` (0 x, 1 y, 2 z), `half_length` along it, `radius` at the
    low end and `radius_top` at the high end (a capped cone frustum when they differ).
    """

    kind: str
    center: tuple[float, float, float]
    color: tuple[float, float, float]
    half: tuple[float, float, float] = (0.0, 0.0, 0.0)
    radius: float = 0.0
    radius_top: float = 0.0
    half_length: float = 0.0
    axis: int = 2

    def __post_init__(self) -> None:
        if self.kind == "box":
            valid = min(self.half) > 0
        elif self.kind == "sphere":
            valid = self.radius > 0
        elif self.kind == "cylinder":
            radii = (self.radius, self.radius_top)
            valid = self.half_length > 0 and min(radii) >= 0 and max(radii) > 0
            valid = valid and self.axis in (0, 1, 2)
        else:
            raise ValueError(f"unknown primitive kind {self.kind!r}")
        if not valid:
            raise ValueError(f"a {self.kind} needs positive sizes: {self}")

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact axis-aligned bounding box: (lo (3,), hi (3,))."""
        center = np.asarray(self.center, dtype=np.float64)
        if self.kind == "box":
            extent = np.asarray(self.half, dtype=np.float64)
        elif self.kind == "sphere":
            extent = np.full(3, self.radius)
        else:
            extent = np.full(3, max(self.radius, self.radius_top))
            extent[self.axis] = self.half_length
        return center - extent, center + extent

    def transformed(self, shift: np.ndarray, scale: float) -> Primitive:
        """The primitive scaled about the origin by `scale`, then moved by `shift` (3,)."""
        center = tuple(float(c) for c in (np.asarray(self.center) * scale + shift))
        return replace(
            self,
            center=center,
            half=tuple(float(h * scale) for h in self.half),
            radius=self.radius * scale,
            radius_top=self.radius_top * scale,
            half_length=self.half_length * scale,
        )


Scene = list[Primitive]


def box(center: Sequence[float], half: Sequence[float], color: Sequence[float]) -> Primitive:
    return Primitive("box", _vec(center), _vec(color), half=_vec(half))


def sphere(center: Sequence[float], radius: float, color: Sequence[float]) -> Primitive:
    return Primitive("sphere", _vec(center), _vec(color), radius=float(radius))


def cylinder(
    center: Sequence[float],
    radius: float,
    half_length: float,
    color: Sequence[float],
    axis: int = 2,
    radius_top: float | None = None,
) -> Primitive:
    top = radius if radius_top is None else radius_top
    return Primitive(
        "cylinder",
        _vec(center),
        _vec(color),
        radius=float(radius),
        radius_top=float(top),
        half_length=float(half_length),
        axis=axis,
    )


def _vec(values: Sequence[float]) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in values)
    return (x, y, z)


def scene_bounds(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds of a whole scene: (lo (3,), hi (3,))."""
    boxes = [p.bounds() for p in scene]
    return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)


# ----------------------------------------------------------------------------------------------
# Procedural objects


def _color(
    rng: np.random.Generator,
    saturation: tuple[float, float] = (0.3, 0.9),
    value: tuple[float, float] = (0.35, 0.95),
    hue: float | None = None,
) -> tuple[float, float, float]:
    h = rng.uniform(0.0, 1.0) if hue is None else hue
    s, v = rng.uniform(*saturation), rng.uniform(*value)
    return _vec(colorsys.hsv_to_rgb(h, s, v))


def _grey(rng: np.random.Generator, low: float, high: float) -> tuple[float, float, float]:
    v = rng.uniform(low, high)
    return (v, v, v)


def _chair(rng: np.random.Generator) -> Scene:
    width, depth = rng.uniform(0.40, 0.60), rng.uniform(0.38, 0.60)  # seat x, y
    thick = rng.uniform(0.03, 0.08)
    height = rng.uniform(0.35, 0.50)  # floor to seat underside
    seat_color = _color(rng, (0.2, 0.8), (0.3, 0.9))
    leg_color = seat_color if rng.uniform() < 0.5 else _color(rng, (0.0, 0.5), (0.1, 0.7))
    back_color = seat_color if rng.uniform() < 0.7 else _color(rng, (0.2, 0.8), (0.3, 0.9))
    seat_top = height + thick
    parts = [box((0, 0, height + thick / 2), (width / 2, depth / 2, thick / 2), seat_color)]
    back_thick = rng.uniform(0.03, 0.07)
    back_height = rng.uniform(0.30, 0.60)
    back_width = width * rng.uniform(0.75, 1.0)
    back_y = -depth / 2 + back_thick / 2
    parts.append(
        box(
            (0, back_y, seat_top + back_height / 2),
            (back_width / 2, back_thick / 2, back_height / 2),
            back_color,
        )
    )
    leg = rng.uniform(0.015, 0.04)  # half width or radius
    inset = rng.uniform(0.0, 0.06)
    round_legs = rng.uniform() < 0.5
    for sx in (-1, 1):
        for sy in (-1, 1):
            x = sx * (width / 2 - leg - inset)
            y = sy * (depth / 2 - leg - inset)
            if round_legs:
                parts.append(cylinder((x, y, height / 2), leg, height / 2, leg_color))
            else:
                parts.append(box((x, y, height / 2), (leg, leg, height / 2), leg_color))
    if rng.uniform() < 0.3:  # armrests on posts
        arm_height = rng.uniform(0.15, 0.25)
        arm_half = rng.uniform(0.015, 0.03)
        for sx in (-1, 1):
            x = sx * (width / 2 - arm_half)
            parts.append(
                box(
                    (x, 0, seat_top + arm_height),
                    (arm_half, depth / 2 - back_thick / 2, arm_half),
                    leg_color,
                )
            )
            parts.append(
                box(
                    (x, depth / 2 - arm_half * 2, seat_top + arm_height / 2),
                    (arm_half, arm_half, arm_height / 2),
                    leg_color,
                )
            )
    return parts


def _car(rng: np.random.Generator) -> Scene:
    length, width = rng.uniform(0.9, 1.25), rng.uniform(0.40, 0.55)  # along x, y
    wheel = rng.uniform(0.09, 0.14)  # radius
    clearance = wheel * rng.uniform(0.5, 0.9)  # body underside above the ground
    body_height = rng.uniform(0.14, 0.26)
    paint = _color(rng, (0.4, 0.95), (0.3, 0.95))
    parts = [
        box(
            (0, 0, clearance + body_height / 2),
            (length / 2, width / 2, body_height / 2),
            paint,
        )
    ]
    cabin_length = length * rng.uniform(0.38, 0.62)
    cabin_height = rng.uniform(0.11, 0.20)
    cabin_x = length * rng.uniform(-0.15, 0.08)
    cabin_color = paint if rng.uniform() < 0.5 else _color(rng, (0.1, 0.4), (0.1, 0.35), 0.6)
    parts.append(
        box(
            (cabin_x, 0, clearance + body_height + cabin_height / 2),
            (cabin_length / 2, width / 2 * rng.uniform(0.78, 0.95), cabin_height / 2),
            cabin_color,
        )
    )
    tyre = _grey(rng, 0.04, 0.14)
    hub = _grey(rng, 0.5, 0.85)
    tread = rng.uniform(0.035, 0.065)  # half width of a tyre
    axle_x = length / 2 - wheel * rng.uniform(1.1, 1.6)
    for sx in (-1, 1):
        for sy in (-1, 1):
            y = sy * (width / 2 - tread * 0.6)
            parts.append(cylinder((sx * axle_x, y, wheel), wheel, tread, tyre, axis=1))
            parts.append(cylinder((sx * axle_x, y, wheel), wheel * 0.55, tread * 1.08, hub, axis=1))
    return parts


def _lamp(rng: np.random.Generator) -> Scene:
    metal = _grey(rng, 0.1, 0.8) if rng.uniform() < 0.6 else _color(rng, (0.3, 0.7), (0.4, 0.8))
    base_radius = rng.uniform(0.12, 0.25)
    base_half = rng.uniform(0.015, 0.04)
    parts = [cylinder((0, 0, base_half), base_radius, base_half, metal)]
    stem_radius = rng.uniform(0.01, 0.025)
    stem_height = rng.uniform(0.40, 0.90)
    stem_top = 2 * base_half + stem_height
    parts.append(
        cylinder((0, 0, 2 * base_half + stem_height / 2), stem_radius, stem_height / 2, metal)
    )
    shade_color = _color(rng, (0.05, 0.7), (0.55, 0.98))
    shape = rng.integers(3)
    if shape == 0:  # drum
        radius, half = rng.uniform(0.12, 0.25), rng.uniform(0.06, 0.13)
        parts.append(cylinder((0, 0, stem_top - half * 0.4), radius, half, shade_color))
    elif shape == 1:  # globe
        radius = rng.uniform(0.10, 0.20)
        parts.append(sphere((0, 0, stem_top + radius * 0.7), radius, shade_color))
    else:  # cone frustum, wide at the bottom
        bottom, half = rng.uniform(0.15, 0.30), rng.uniform(0.06, 0.13)
        top = bottom * rng.uniform(0.2, 0.6)
        parts.append(
            cylinder((0, 0, stem_top - half * 0.4), bottom, half, shade_color, radius_top=top)
        )
    return parts


_BUILDERS: dict[str, Callable[[np.random.Generator], Scene]] = {
    "chairs": _chair,
    "cars": _car,
    "lamps": _lamp,
}


def make_object(category: str, rng: np.random.Generator, extent: float = EXTENT) -> Scene:
    """A random object of `category`: Z up, its bounding box centred at the origin and scaled so
    that its largest half extent is `extent` (ShapeNet's normalisation with extent 1.0; the
    default keeps it inside [-0.6, 0.6]^3)."""
    if category not in _BUILDERS:
        raise ValueError(f"unknown category {category!r}; choose from {', '.join(CATEGORIES)}")
    parts = _BUILDERS[category](rng)
    lo, hi = scene_bounds(parts)
    centre, scale = (lo + hi) / 2, 2 * extent / float((hi - lo).max())
    return [p.transformed(-centre * scale, scale) for p in parts]


def view_poses(
    rng: np.random.Generator, count: int = 50, radius: float = RADIUS
) -> list[torch.Tensor]:
    """`count` (4, 4) camera-to-world poses on the sphere looking at the origin.

    Azimuth uniform in [0, 360), elevation uniform in [0, 60] degrees (like the real data).
    """
    azimuths = rng.uniform(0.0, 360.0, size=count)
    elevations = rng.uniform(0.0, 60.0, size=count)
    return [
        look_at_pose(float(a), float(e), radius) for a, e in zip(azimuths, elevations, strict=True)
    ]


# ----------------------------------------------------------------------------------------------
# Ray tracing (every function is vectorised over primitives P and rays N)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def _slab(
    lo: torch.Tensor, hi: torch.Tensor, origins: torch.Tensor, inverse: torch.Tensor
) -> torch.Tensor:
    """Entry distance into boxes lo, hi (P, 3) of rays (N, 3), inf on a miss: (P, N)."""
    t1 = (lo[:, None] - origins) * inverse  # (P, N, 3)
    t2 = (hi[:, None] - origins) * inverse
    near = torch.minimum(t1, t2).amax(-1)
    far = torch.maximum(t1, t2).amin(-1)
    hit = (near <= far) & (near > 0)
    return torch.where(hit, near, _INF)


def _sphere_hits(
    centre: torch.Tensor, radius: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """Nearest hit of spheres (P, 3), (P,) by rays (N, 3): (P, N), inf on a miss."""
    oc = origins - centre[:, None]  # (P, N, 3)
    a = _dot(directions, directions)  # (N,)
    b = _dot(oc, directions)  # (P, N), half of the usual b
    c = _dot(oc, oc) - radius[:, None] ** 2
    disc = b * b - a * c
    t = (-b - disc.clamp(min=0).sqrt()) / a
    return torch.where((disc >= 0) & (t > 0), t, _INF)


def _frustum_hits(
    centre: torch.Tensor,
    axis: torch.Tensor,
    half: torch.Tensor,
    mid: torch.Tensor,
    slope: torch.Tensor,
    origins: torch.Tensor,
    directions: torch.Tensor,
) -> torch.Tensor:
    """Nearest hit of capped cone frusta by rays (N, 3): (P, N), inf on a miss.

    centre (P, 3), axis (P, 3) one-hot, half length (P,), radius r(w) = mid + slope * w along the
    axis coordinate w in [-half, half].
    """
    oc = origins - centre[:, None]  # (P, N, 3)
    ow = _dot(oc, axis[:, None])  # (P, N)
    dw = directions @ axis.T  # (N, P)
    dw = dw.T
    dd = _dot(directions, directions)  # (N,)
    od = _dot(oc, directions)
    oo = _dot(oc, oc)
    mid, slope, half = mid[:, None], slope[:, None], half[:, None]
    k = mid + slope * ow
    qa = dd - dw * dw - slope * slope * dw * dw
    qb = od - ow * dw - slope * k * dw
    qc = oo - ow * ow - k * k
    disc = qb * qb - qa * qc
    root = disc.clamp(min=0).sqrt()
    usable = (disc >= 0) & (qa.abs() > 1e-12)
    safe_a = torch.where(usable, qa, torch.ones_like(qa))
    best = torch.full_like(ow, _INF)
    for sign in (-1.0, 1.0):
        t = (-qb + sign * root) / safe_a
        w = ow + t * dw
        ok = usable & (t > 0) & (w.abs() <= half)
        best = torch.minimum(best, torch.where(ok, t, _INF))
    safe_dw = torch.where(dw.abs() > 1e-12, dw, torch.full_like(dw, 1e-12))
    for sign in (-1.0, 1.0):
        t = (sign * half - ow) / safe_dw
        cap_radius = mid + slope * sign * half
        radial = oo + 2 * t * od + t * t * dd - (ow + t * dw) ** 2  # squared distance to axis
        ok = (t > 0) & (radial <= cap_radius * cap_radius)
        best = torch.minimum(best, torch.where(ok, t, _INF))
    return best


class _Tables:
    """A scene as tensors, primitives ordered boxes, spheres, cylinders."""

    def __init__(self, scene: Scene) -> None:
        boxes = [p for p in scene if p.kind == "box"]
        spheres = [p for p in scene if p.kind == "sphere"]
        cylinders = [p for p in scene if p.kind == "cylinder"]
        ordered = boxes + spheres + cylinders
        self.counts = (len(boxes), len(spheres), len(cylinders))

        def tensor(values: list, columns: int = 3) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32).reshape(len(values), columns)

        self.colors = tensor([p.color for p in ordered])  # (P, 3)
        self.box_centre = tensor([p.center for p in boxes])  # (Pb, 3)
        self.box_half = tensor([p.half for p in boxes])  # (Pb, 3)
        self.sphere_centre = tensor([p.center for p in spheres])  # (Ps, 3)
        self.sphere_radius = tensor([p.radius for p in spheres], 1)[:, 0]
        self.cyl_centre = tensor([p.center for p in cylinders])  # (Pc, 3)
        self.cyl_axis = torch.eye(3)[[p.axis for p in cylinders]]  # (Pc, 3)
        self.cyl_half = torch.tensor([p.half_length for p in cylinders], dtype=torch.float32)
        self.cyl_mid = torch.tensor(
            [(p.radius + p.radius_top) / 2 for p in cylinders], dtype=torch.float32
        )
        self.cyl_slope = torch.tensor(
            [(p.radius_top - p.radius) / (2 * p.half_length) for p in cylinders],
            dtype=torch.float32,
        )
        lo, hi = scene_bounds(scene)
        self.lo = torch.tensor(lo, dtype=torch.float32)[None]  # (1, 3)
        self.hi = torch.tensor(hi, dtype=torch.float32)[None]

    def hits(self, origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """Distances to every primitive: (P, N), inf on a miss."""
        parts = []
        if self.counts[0]:
            inverse = 1.0 / _nonzero(directions)
            lo, hi = self.box_centre - self.box_half, self.box_centre + self.box_half
            parts.append(_slab(lo, hi, origins, inverse))
        if self.counts[1]:
            parts.append(_sphere_hits(self.sphere_centre, self.sphere_radius, origins, directions))
        if self.counts[2]:
            parts.append(
                _frustum_hits(
                    self.cyl_centre,
                    self.cyl_axis,
                    self.cyl_half,
                    self.cyl_mid,
                    self.cyl_slope,
                    origins,
                    directions,
                )
            )
        return torch.cat(parts)

    def normals(self, points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Outward unit normals at surface points (M, 3) of primitives `index` (M,): (M, 3)."""
        normals = torch.zeros_like(points)
        nb, ns, _ = self.counts
        chosen = index < nb
        if chosen.any():
            j = index[chosen]
            q = (points[chosen] - self.box_centre[j]) / self.box_half[j]
            face = q.abs().argmax(-1, keepdim=True)
            n = torch.zeros_like(q).scatter_(-1, face, q.gather(-1, face).sign())
            normals[chosen] = n
        chosen = (index >= nb) & (index < nb + ns)
        if chosen.any():
            j = index[chosen] - nb
            normals[chosen] = points[chosen] - self.sphere_centre[j]
        chosen = index >= nb + ns
        if chosen.any():
            j = index[chosen] - nb - ns
            q = points[chosen] - self.cyl_centre[j]
            axis = self.cyl_axis[j]
            w = _dot(q, axis)
            radial = q - w[:, None] * axis
            rho = radial.norm(dim=-1)
            half, slope = self.cyl_half[j], self.cyl_slope[j]
            r = self.cyl_mid[j] + slope * w
            side = radial / rho.clamp(min=1e-9)[:, None] - slope[:, None] * axis
            cap = w.sign()[:, None] * axis
            on_cap = (w.abs() - half).abs() < (rho - r).abs()
            normals[chosen] = torch.where(on_cap[:, None], cap, side)
        return normals / normals.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def _nonzero(values: torch.Tensor) -> torch.Tensor:
    tiny = torch.full_like(values, 1e-12)
    return torch.where(values.abs() > 1e-12, values, torch.where(values < 0, -tiny, tiny))


def _trace(
    tables: _Tables, origins: torch.Tensor, directions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays (N, 3) -> index of the primitive hit first (N,) (-1 on a miss) and its shaded colour
    in [0, 1] (N, 3) (0 on a miss)."""
    count = origins.shape[0]
    index = torch.full((count,), -1, dtype=torch.long)
    colour = torch.zeros(count, 3)
    if count == 0:
        return index, colour
    t, nearest = tables.hits(origins, directions).min(0)  # (N,)
    rays = torch.nonzero(t < _INF)[:, 0]
    t, nearest = t[rays], nearest[rays]
    points = origins[rays] + t[:, None] * directions[rays]
    normals = tables.normals(points, nearest)
    light = torch.tensor(LIGHT, dtype=torch.float32)
    light = light / light.norm()
    shade = AMBIENT + DIFFUSE * (normals @ light).clamp(min=0)  # (K,)
    index[rays] = nearest
    colour[rays] = (tables.colors[nearest] * shade[:, None]).clamp(0, 1)
    return index, colour


def _screen_boxes(
    tables: _Tables, poses: torch.Tensor, height: int, width: int, focal: float
) -> torch.Tensor:
    """Pixel rectangles (V, 4) = x0, x1, y0, y1 (inclusive, padded by one pixel) holding the
    projection of the scene's bounding box in each view (the box is in front of every camera)."""
    upper = torch.tensor(list(itertools.product((False, True), repeat=3)))  # (8, 3)
    corners = torch.where(upper, tables.hi, tables.lo)  # (8, 3)
    rotation, position = poses[:, :3, :3], poses[:, :3, 3]  # (V, 3, 3), (V, 3)
    local = torch.einsum("vji,vcj->vci", rotation, corners[None] - position[:, None])  # (V, 8, 3)
    depth = (-local[..., 2]).clamp(min=1e-6)
    x = local[..., 0] / depth * focal + 0.5 * width - 0.5  # pixel index whose centre is there
    y = -local[..., 1] / depth * focal + 0.5 * height - 0.5
    boxes = torch.stack(
        [x.amin(1).floor() - 1, x.amax(1).ceil() + 1, y.amin(1).floor() - 1, y.amax(1).ceil() + 1],
        -1,
    )
    limits = torch.tensor([width - 1, width - 1, height - 1, height - 1], dtype=boxes.dtype)
    return torch.minimum(boxes.clamp(min=0), limits).long()


def _edges(index: torch.Tensor) -> torch.Tensor:
    """Pixels whose primitive id (V, H, W) differs from one of their 8 neighbours' (V, H, W)."""
    padded = torch.nn.functional.pad(index[:, None].float(), (1, 1, 1, 1), mode="replicate")[:, 0]
    height, width = index.shape[1:]
    edge = torch.zeros_like(index, dtype=torch.bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if (dy, dx) != (1, 1):
                edge |= padded[:, dy : dy + height, dx : dx + width] != index
    return edge


def _directions(
    poses: torch.Tensor, view: torch.Tensor, camera: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """World rays of camera-space directions `camera` (N, 3) seen from poses[view] (N,):
    origins, directions (N, 3)."""
    rotation = poses[view, :3, :3]  # (N, 3, 3)
    directions = (
        rotation[:, :, 0] * camera[:, 0:1]
        + rotation[:, :, 1] * camera[:, 1:2]
        + rotation[:, :, 2] * camera[:, 2:3]
    )
    return poses[view, :3, 3], directions


def render_views(
    scene: Scene,
    poses: torch.Tensor,
    height: int = 128,
    width: int = 128,
    camera_angle_x: float = CAMERA_ANGLE_X,
    supersample: int = 2,
) -> np.ndarray:
    """Render camera-to-world poses (V, 4, 4) -> uint8 RGBA (V, H, W, 4).

    Pixel-centre rays in the `models.nerf.rays.camera_rays` convention (its camera-space grid,
    rotated by each pose); only pixels inside the projected scene bounding box are traced. With
    `supersample` s > 1, pixels on an edge (primitive id differs from a neighbour's) are traced
    again with s x s sub-pixel rays (the centres of camera_rays' (sH, sW) grid at focal s f) and
    alpha is their coverage. RGB is the mean colour of the covered samples (not premultiplied);
    the background is (255, 255, 255, 0), like the real renders.
    """
    focal = focal_from_angle(width, camera_angle_x)
    poses = poses.detach().to(torch.float32).reshape(-1, 4, 4)
    views = poses.shape[0]
    if not scene:
        return np.tile(np.array([255, 255, 255, 0], dtype=np.uint8), (views, height, width, 1))
    tables = _Tables(scene)
    with torch.no_grad():
        camera = camera_rays(torch.eye(4), height, width, focal)[1].reshape(-1, 3)  # (HW, 3)
        boxes = _screen_boxes(tables, poses, height, width, focal)  # (V, 4)
        cols = torch.arange(width)
        rows = torch.arange(height)
        inside = ((cols >= boxes[:, 0, None]) & (cols <= boxes[:, 1, None]))[:, None, :] & (
            (rows >= boxes[:, 2, None]) & (rows <= boxes[:, 3, None])
        )[:, :, None]
        pixels = torch.nonzero(inside.reshape(-1))[:, 0]  # flat (V*H*W) indices
        view = pixels // (height * width)
        origins, directions = _directions(poses, view, camera[pixels % (height * width)])
        found, colour = _trace(tables, origins, directions)
        index = torch.full((views * height * width,), -1, dtype=torch.long)
        index[pixels] = found
        rgb = torch.zeros(views * height * width, 3)
        rgb[pixels] = colour
        alpha = (index >= 0).float()
        if supersample > 1:
            s = supersample
            edge = torch.nonzero(_edges(index.reshape(views, height, width)).reshape(-1))[:, 0]
            view, pixel = edge // (height * width), edge % (height * width)
            x = (pixel % width).float()[:, None] - 0.5 * width  # (E, 1)
            y = (pixel // width).float()[:, None] - 0.5 * height
            offsets = (torch.arange(s, dtype=torch.float32) + 0.5) / s  # (s,)
            sub_x = ((x[:, None, :] + offsets[None, None, :]) / focal).expand(-1, s, s)
            sub_y = (-(y[:, :, None] + offsets[None, :, None]) / focal).expand(-1, s, s)
            sub = torch.stack([sub_x, sub_y, -torch.ones_like(sub_x)], -1)  # (E, s, s, 3)
            origins, directions = _directions(
                poses, view.repeat_interleave(s * s), sub.reshape(-1, 3)
            )
            found, colour = _trace(tables, origins, directions)
            covered = (found >= 0).reshape(-1, s * s).float()  # (E, s*s)
            hits = covered.sum(1)
            alpha[edge] = hits / (s * s)
            rgb[edge] = colour.reshape(-1, s * s, 3).sum(1) / hits.clamp(min=1)[:, None]
        rgb = torch.where(alpha[:, None] > 0, rgb, torch.ones_like(rgb))
        rgba = torch.cat([rgb, alpha[:, None]], -1).reshape(views, height, width, 4)
        return (rgba * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def render_view(
    scene: Scene,
    pose: torch.Tensor,
    height: int = 128,
    width: int = 128,
    camera_angle_x: float = CAMERA_ANGLE_X,
    supersample: int = 2,
) -> np.ndarray:
    """Render one camera-to-world pose (4, 4) -> uint8 RGBA (H, W, 4); see `render_views`."""
    return render_views(scene, pose[None], height, width, camera_angle_x, supersample)[0]


# ----------------------------------------------------------------------------------------------
# Data set writer


def object_id(category: str, seed: int, index: int) -> str:
    """Deterministic 32-hex-digit id of object `index` (like ShapeNet's ids)."""
    return hashlib.sha1(f"transinr-synth/{category}/{seed}/{index}".encode()).hexdigest()[:32]


def splits_name(category: str) -> str:
    """Split file of a category folder: chairs -> chair_splits.json (the learnit loader rule)."""
    return f"{category[:-1] if category.endswith('s') else category}_splits.json"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary name beside `path`, then rename it over `path`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _png(rgba: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def write_object(
    folder: Path,
    scene: Scene,
    poses: list[torch.Tensor],
    size: int = 128,
    camera_angle_x: float = CAMERA_ANGLE_X,
    supersample: int = 2,
) -> None:
    """Write one object's views (000.png ...) and then its transforms.json into `folder`."""
    stacked = torch.stack(poses).to(torch.float32)  # (V, 4, 4): the matrices written are exact
    images = render_views(scene, stacked, size, size, camera_angle_x, supersample)
    write_views(folder, images, stacked, camera_angle_x)


def write_views(
    folder: Path, images: np.ndarray, poses: torch.Tensor, camera_angle_x: float = CAMERA_ANGLE_X
) -> None:
    """Write rendered views, uint8 RGBA (V, H, W, 4), as `folder`/000.png ... and then their
    camera-to-world poses (V, 4, 4) as `folder`/transforms.json (the learnit format), each file
    atomically; transforms.json comes last, so a folder that has one is complete."""
    folder.mkdir(parents=True, exist_ok=True)
    for view, image in enumerate(images):
        write_atomic(folder / f"{view:03d}.png", _png(image))
    frames = [
        {"file_path": f"./rgb/{view:03d}", "transform_matrix": pose.double().tolist()}
        for view, pose in enumerate(poses)
    ]
    transforms = {"camera_angle_x": camera_angle_x, "frames": frames}
    write_atomic(folder / "transforms.json", json.dumps(transforms, indent=1).encode())


def split_ids(ids: list[str], test_fraction: float = 0.2) -> dict[str, list[str]]:
    """Deterministic split: the ids ranking first in sorted order go to test (at least one when
    there are two or more ids, and never all); lists are sorted, "val" is empty."""
    ranked = sorted(ids)
    tests = 0
    if len(ids) >= 2:
        tests = min(len(ids) - 1, max(1, round(len(ids) * test_fraction)))
    return {"train": sorted(ranked[tests:]), "val": [], "test": sorted(ranked[:tests])}


def write_dataset(
    root: Path,
    category: str,
    objects: int,
    seed: int = 0,
    views: int = 50,
    size: int = 128,
    test_fraction: float = 0.2,
    on_object: Callable[[int], None] | None = None,
    extent: float = EXTENT,
) -> list[str]:
    """Write `objects` synthetic objects of `category` under `root` in the learnit layout.

    `<root>/<category>/<id>/{000..}.png, transforms.json` per object, then
    `<root>/<category minus s>_splits.json`. Object `i` depends only on (category, seed, i), so
    the same seed gives byte-identical files (and a larger `objects` only adds objects). Each
    object's transforms.json is written after its PNGs, every file atomically; `on_object(i)` is
    called after object i. `extent` is the largest half extent of every object (1.0 matches the
    real ShapeNet renders). Returns the object ids in index order.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; choose from {', '.join(CATEGORIES)}")
    if objects < 0 or seed < 0 or views < 1 or size < 1:
        raise ValueError("objects and seed must be >= 0, views and size >= 1")
    if not 0 < extent <= 1.1:
        raise ValueError("extent must be in (0, 1.1] (inside near 2 from a camera at radius 4)")
    root = Path(root)
    folder = root / category
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for index in range(objects):
        rng = np.random.default_rng([seed, CATEGORIES.index(category), index])
        scene = make_object(category, rng, extent)
        poses = view_poses(rng, views)
        ids.append(object_id(category, seed, index))
        write_object(folder / ids[-1], scene, poses, size)
        if on_object is not None:
            on_object(index)
    splits = split_ids(ids, test_fraction)
    write_atomic(root / splits_name(category), json.dumps(splits, indent=1).encode())
    return ids
