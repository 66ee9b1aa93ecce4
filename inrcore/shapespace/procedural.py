"""A collection to learn from without a download: seeded shape families (chair, table, lamp, mug,
airplane) built from boxes, cylinders, cones, spheres, tori and convex hulls joined by manifold3d
booleans, so every mesh is a closed, outward-oriented solid by construction.

Each family draws its proportions and discrete choices (legs, backrest style, handle, engines...)
from a generator seeded by the shape's seed. Parts are sized in a frame where the family's largest
dimension is about 1 and none is thinner than 0.022 (2% of the shape: a 128³ grid resolves it);
each solid is checked to be one body of the genus its design implies. Shapes are modelled with z up
and the front towards -y, then turned so that y is up (the project's cameras), the front to +z.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import trimesh

from inrcore.errors import ConfigError, ShapeError
from inrcore.files import write_text_atomic
from inrcore.shapespace.settings import FAMILIES, GeneratorConfig


SEGMENTS = 32  # segments around every circle (spheres, cylinders, cones, tori)
_WORD = (1 << 64) - 1


def _manifold3d():
    """The manifold3d module, imported when first needed, with a clear error when it is missing."""
    try:
        import manifold3d
    except ImportError as error:  # pragma: no cover - manifold3d is a dependency
        raise ImportError("inrcore.shapespace.procedural needs the manifold3d package "
                          "(pip install manifold3d)") from error
    return manifold3d


def _box(size, centre):
    """Box of edge lengths size (3,) centred at centre (3,)."""
    return _manifold3d().Manifold.cube(tuple(size), True).translate(tuple(centre))


def _cylinder(radius, z0, z1, x=0.0, y=0.0, top=None):
    """Upright cylinder about (x, y) from height z0 to z1; a cone frustum when `top` radius is given."""
    top = radius if top is None else top
    return _manifold3d().Manifold.cylinder(z1 - z0, radius, top, SEGMENTS).translate((x, y, z0))


def _sphere(radius, centre):
    return _manifold3d().Manifold.sphere(float(radius), SEGMENTS).translate(tuple(centre))


def _rod(start, end, radius, square=False):
    """Bar of radius `radius` (or square, side 2·radius) from point start (3,) to end (3,)."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    length = float(np.linalg.norm(end - start))
    axis = (end - start) / length
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = helper - axis * (helper @ axis)
    u /= np.linalg.norm(u)
    solid = _manifold3d().Manifold
    bar = (solid.cube((2 * radius, 2 * radius, length), False).translate((-radius, -radius, 0.0)) if square
           else solid.cylinder(length, float(radius), float(radius), SEGMENTS))
    return bar.transform(np.column_stack([u, np.cross(axis, u), axis, start]))


def _torus(major, minor):
    """Ring of tube radius `minor` around the circle of radius `major` about the z axis."""
    m3d = _manifold3d()
    return m3d.Manifold.revolve(m3d.CrossSection.circle(minor, SEGMENTS // 2).translate((major, 0.0)), SEGMENTS)


def _union(parts):
    m3d = _manifold3d()
    return m3d.Manifold.batch_boolean(list(parts), m3d.OpType.Add)


def _backrest(rng, width, seat_t):
    """Backrest in its own frame (x across, thickness along y about 0, from z=-seat_t to its height):
    a solid panel, or posts and a top rail framing vertical slats or horizontal rails.
    Returns (solid, genus, post width, height, thickness)."""
    height, thick = rng.uniform(0.3, 0.5), rng.uniform(0.025, 0.045)
    style = rng.choice(["solid", "slats", "rails"])
    if style == "solid":
        return _box((width, thick, height + seat_t), (0, 0, (height - seat_t) / 2)), 0, rng.uniform(0.035, 0.05), \
            height, thick
    post, rail = rng.uniform(0.03, 0.045), rng.uniform(0.05, 0.09)
    parts = [_box((post, thick, height + seat_t), (s * (width - post) / 2, 0, (height - seat_t) / 2))
             for s in (-1, 1)]
    parts.append(_box((width, thick, rail), (0, 0, height - rail / 2)))
    count = int(rng.integers(0, 5 if style == "slats" else 4))
    if style == "slats":
        bar, inner = rng.uniform(0.025, 0.04), width - 2 * post
        while count and (inner - count * bar) / (count + 1) < 0.03:
            count -= 1
        gap, z0, z1 = (inner - count * bar) / (count + 1), -seat_t / 2, height - rail / 2
        parts += [_box((bar, thick, z1 - z0), (-inner / 2 + gap * (i + 1) + bar * (i + 0.5), 0, (z0 + z1) / 2))
                  for i in range(count)]
    else:
        bar, span = rng.uniform(0.03, 0.045), height - rail
        while count and (span - count * bar) / (count + 1) < 0.035:
            count -= 1
        gap = (span - count * bar) / (count + 1)
        parts += [_box((width - post, thick, bar), (0, 0, gap * (i + 1) + bar * (i + 0.5))) for i in range(count)]
    return _union(parts), 1 + count, post, height, thick


def _chair_legs(rng, corners, seat_mid):
    """Four legs (round or square, maybe splayed, maybe with side stretchers) under the seat at corners
    [(x, y)]. Returns (parts, genus)."""
    radius, square, splay = rng.uniform(0.015, 0.025), rng.random() < 0.5, rng.uniform(0.0, 0.05)
    bottoms = [(x + math.copysign(splay, x), y + math.copysign(splay, y), 0.0) for x, y in corners]
    tops = [(x, y, seat_mid) for x, y in corners]
    parts = [_rod(b, t, radius, square) for b, t in zip(bottoms, tops)]
    if rng.random() >= 0.3:
        return parts, 0
    f = rng.uniform(0.12, 0.2) / seat_mid
    on_leg = [np.asarray(b) + f * (np.asarray(t) - np.asarray(b)) for b, t in zip(bottoms, tops)]
    pairs = [(0, 1), (2, 3)]  # corners come as (-x, -y), (-x, +y), (+x, -y), (+x, +y)
    return parts + [_rod(on_leg[i], on_leg[j], max(0.012, 0.6 * radius)) for i, j in pairs], len(pairs)


def _chair(rng):
    """Chair: seat (rectangular or round), four legs or a swivel base, a tilted backrest, maybe arms."""
    h, t = rng.uniform(0.40, 0.50), rng.uniform(0.03, 0.06)
    if rng.random() < 0.2:
        radius = rng.uniform(0.2, 0.27)
        w = d = None
        parts, back_w, back_y = [_cylinder(radius, h - t, h)], 1.1 * radius, 0.7 * radius
        corners = [(sx * 0.5 * radius, sy * 0.5 * radius) for sx in (-1, 1) for sy in (-1, 1)]
    else:
        w, d = rng.uniform(0.40, 0.58), rng.uniform(0.38, 0.52)
        parts, back_w, back_y = [_box((w, d, t), (0, 0, h - t / 2))], w, None
        inset = rng.uniform(0.025, 0.06)
        corners = [(sx * (w / 2 - inset), sy * (d / 2 - inset)) for sx in (-1, 1) for sy in (-1, 1)]
    genus = 0
    if rng.random() < 0.25:  # office-chair base: a column on a hub with 4 or 5 spokes ending in casters
        spokes, reach, hub = int(rng.integers(4, 6)), rng.uniform(0.22, 0.3), 0.055
        parts += [_cylinder(rng.uniform(0.022, 0.035), hub, h - t / 2), _sphere(0.04, (0, 0, hub))]
        for angle in 2 * math.pi * (np.arange(spokes) + 0.25) / spokes:
            end = (reach * math.cos(angle), reach * math.sin(angle))
            parts += [_rod((0, 0, hub), (*end, hub), 0.016), _sphere(0.03, (*end, 0.03))]
    else:
        legs, genus = _chair_legs(rng, corners, h - t / 2)
        parts += legs
    back, back_genus, post, _, thick = _backrest(rng, back_w, t)
    tilt = rng.uniform(0.0, 15.0)
    back_y = d / 2 - thick / 2 if back_y is None else back_y
    parts.append(back.rotate((-tilt, 0.0, 0.0)).translate((0.0, back_y, h)))
    genus += back_genus
    if w is not None and rng.random() < 0.35:  # arms from a front support back into the backrest
        arm_z, arm_t, y0 = rng.uniform(0.18, 0.24), rng.uniform(0.03, 0.045), -d / 2 + 0.01
        y1 = back_y + arm_z * math.tan(math.radians(tilt))
        x = w / 2 - post / 2
        arm = [_box((post, y1 - y0, arm_t), (x, (y0 + y1) / 2, h + arm_z)),
               _box((post, post, arm_z + t / 2), (x, y0 + 0.02 + post / 2, h - t / 2 + (arm_z + t / 2) / 2))]
        parts, genus = parts + arm + [a.mirror((1.0, 0.0, 0.0)) for a in arm], genus + 2
    return _union(parts), genus


def _table(rng):
    """Table: rectangular (maybe rounded), round or oval top on four legs (maybe an apron and a shelf),
    a pedestal, or two trestles joined by a stretcher."""
    shape = rng.choice(["rectangle", "round", "oval"], p=[0.55, 0.25, 0.2])
    width = {"rectangle": rng.uniform(0.45, 0.9), "round": 1.0, "oval": rng.uniform(0.55, 0.8)}[shape]
    height, top_t = rng.uniform(0.35, 0.75), rng.uniform(0.025, 0.06)
    z_top, length = height - top_t, 1.0
    if shape != "rectangle":
        parts = [_cylinder(0.5, z_top, height).scale((1.0, width, 1.0))]
    elif rng.random() < 0.4:
        c = rng.uniform(0.03, 0.12)  # corner radius
        posts = [_cylinder(c, z_top, height, sx * (0.5 - c), sy * (width / 2 - c))
                 for sx in (-1, 1) for sy in (-1, 1)]
        parts = [_manifold3d().Manifold.batch_hull(posts)]
    else:
        parts = [_box((length, width, top_t), (0, 0, z_top + top_t / 2))]
    support = rng.choice(["four", "trestle"], p=[0.7, 0.3]) if shape == "rectangle" else \
        rng.choice(["four", "pedestal"], p=[0.4, 0.6])
    mid = z_top + top_t / 2
    if support == "four":
        radius, square = rng.uniform(0.0175, 0.035), rng.random() < 0.5
        inset = radius + rng.uniform(0.02, 0.08)
        x, y = (0.5 - inset, width / 2 - inset) if shape == "rectangle" else (0.33, 0.33 * width)
        parts += [_rod((sx * x, sy * y, 0.0), (sx * x, sy * y, mid), radius, square)
                  for sx in (-1, 1) for sy in (-1, 1)]
        genus = 0
        if shape == "rectangle" and rng.random() < 0.45:
            deep, thin = rng.uniform(0.04, 0.09), rng.uniform(0.022, 0.03)
            z = (z_top - deep + mid) / 2
            parts += [_box((thin, 2 * y, mid - z_top + deep), (s * x, 0, z)) for s in (-1, 1)]
            parts += [_box((2 * x, thin, mid - z_top + deep), (0, s * y, z)) for s in (-1, 1)]
        if shape == "rectangle" and rng.random() < 0.3:
            shelf_z, shelf_t = max(rng.uniform(0.15, 0.3) * height, 0.05), rng.uniform(0.025, 0.04)
            parts.append(_box((2 * x + 2 * radius, 2 * y + 2 * radius, shelf_t), (0, 0, shelf_z)))
            genus = 3
        return _union(parts), genus
    if support == "pedestal":
        column = rng.uniform(0.04, 0.08)
        parts.append(_cylinder(column, 0.0, mid))
        if rng.random() < 0.5:  # a disc foot or two crossed bars
            parts.append(_cylinder(rng.uniform(0.2, 0.32), 0.0, rng.uniform(0.025, 0.045)))
        else:
            foot = 2 * rng.uniform(0.22, 0.32)
            parts += [_box((foot, 0.05, 0.04), (0, 0, 0.02)), _box((0.05, foot, 0.04), (0, 0, 0.02))]
        if rng.random() < 0.5:  # flared under the top
            parts.append(_cylinder(column, z_top - rng.uniform(0.06, 0.1), mid,
                                   top=column * rng.uniform(1.5, 2.5)))
        return _union(parts), 0
    x, slab = 0.5 - rng.uniform(0.08, 0.15), rng.uniform(0.04, 0.07)
    for s in (-1, 1):
        parts += [_box((slab, 0.7 * width, mid - 0.02), (s * x, 0, (mid + 0.02) / 2)),
                  _box((rng.uniform(0.08, 0.1), 0.8 * width, 0.04), (s * x, 0, 0.02))]
    bar_z = max(rng.uniform(0.2, 0.4) * height, 0.09)
    parts.append(_box((2 * x, rng.uniform(0.03, 0.05), rng.uniform(0.04, 0.07)), (0, 0, bar_z)))
    return _union(parts), 1


def _shade(rng, bottom, top, height, stem):
    """Lamp shade along z from 0 (its wide opening) to `height`: a solid cone frustum, or a hollow one
    with a closed top when its opening at the top stays wider than a stem of radius `stem`."""
    outer = _cylinder(bottom, 0.0, height, top=top)
    hollow, wall, cap = rng.random() < 0.5, rng.uniform(0.025, 0.035), rng.uniform(0.025, 0.035)
    slope = (top - bottom) / height
    grow = wall * math.hypot(1.0, slope)  # horizontal offset giving the wall its normal thickness
    inner_top = top - grow - cap * slope
    if not hollow or inner_top < stem + 0.02:
        return outer
    return outer - _cylinder(bottom - grow - 0.01 * slope, -0.01, height - cap, top=inner_top)


def _lamp(rng):
    """Lamp: a disc, square or domed base; a straight stem with a cone or globe shade, or a desk lamp's
    jointed arm with a tilted cone shade."""
    base_r, base_t = rng.uniform(0.12, 0.2), rng.uniform(0.03, 0.06)
    style = rng.choice(["disc", "square", "dome"])
    parts = [_cylinder(base_r, 0.0, base_t) if style == "disc" else
             _box((1.6 * base_r, 1.6 * base_r, base_t), (0, 0, base_t / 2)) if style == "square" else
             _cylinder(base_r, 0.0, base_t, top=base_r * rng.uniform(0.35, 0.6)) + _cylinder(base_r, 0.0, 0.024)]
    stem = rng.uniform(0.012, 0.02)
    if rng.random() < 0.6:
        stem_top = base_t + rng.uniform(0.45, 0.75)
        if rng.random() < 0.3:
            parts += [_cylinder(stem, base_t / 2, stem_top), _sphere(rng.uniform(0.1, 0.16), (0, 0, stem_top))]
        else:  # the stem runs up to the shade's top, inside it when it is hollow
            bottom, tall = rng.uniform(0.12, 0.22), rng.uniform(0.15, 0.28)
            shade_z = stem_top - 0.6 * tall
            parts += [_shade(rng, bottom, bottom * rng.uniform(0.4, 0.8), tall, stem).translate((0, 0, shade_z)),
                      _cylinder(stem, base_t / 2, shade_z + tall - 0.012)]
        return _union(parts), 0
    lean, low = rng.uniform(-0.08, 0.08), rng.uniform(0.3, 0.45)
    angle, reach = math.radians(rng.uniform(10.0, 45.0)), rng.uniform(0.32, 0.45)
    elbow = np.array([0.0, lean, base_t + low])
    end = elbow + reach * np.array([0.0, -math.cos(angle), math.sin(angle)])
    joint = 1.6 * stem
    parts += [_rod((0, 0, base_t / 2), elbow, stem), _rod(elbow, end, stem), _sphere(joint, elbow),
              _sphere(joint, end)]
    bottom, tall = rng.uniform(0.08, 0.14), rng.uniform(0.12, 0.2)
    shade = _shade(rng, bottom, bottom * rng.uniform(0.3, 0.6), tall, 0.0).translate((0, 0, -tall - 0.5 * joint))
    parts.append(shade.rotate((-rng.uniform(0.0, 40.0), 0.0, 0.0)).translate(tuple(end)))
    return _union(parts), 0


def _mug(rng):
    """Mug: a hollow (maybe flared) cylinder, maybe a rounded rim, and a handle (round or oval ring, or a
    squared loop) trimmed at the inner wall. Genus 1."""
    height, radius = rng.uniform(0.7, 1.0), rng.uniform(0.3, 0.42)
    slope = radius * (rng.uniform(1.0, 1.15) - 1.0) / height if rng.random() < 0.5 else 0.0  # flared or not
    wall, floor = rng.uniform(0.035, 0.06), rng.uniform(0.04, 0.08)
    inner = radius - wall * math.hypot(1.0, slope)  # the cavity's radius at z=0 (normal wall thickness)
    cavity = _cylinder(inner + slope * floor, floor, height + 0.05, top=inner + slope * (height + 0.05))
    parts = [_cylinder(radius, 0.0, height, top=radius + slope * height) - cavity]
    if rng.random() < 0.4:
        parts.append(_torus(radius + slope * height - wall / 2, 0.6 * wall).translate((0, 0, height)))
    z = height * rng.uniform(0.47, 0.53)
    kind, side = rng.choice(["ring", "oval", "square"]), radius + slope * z
    if kind == "square":
        bar, reach, half = rng.uniform(0.045, 0.06), rng.uniform(0.14, 0.22), rng.uniform(0.16, 0.26) * height
        x0, x1 = side - wall, side + reach
        handle = _union([_box((x1 - x0, bar, bar), ((x0 + x1) / 2, 0, z + s * half)) for s in (-1, 1)]
                        + [_box((bar, bar, 2 * half + bar), (x1, 0, z))])
    else:
        major, minor = rng.uniform(0.16, 0.24) * height, rng.uniform(0.035, 0.05)
        stretch = rng.uniform(1.0, 1.3) if kind == "oval" else 1.0
        handle = _torus(major, minor).rotate((90.0, 0.0, 0.0)).scale((1.0, 1.0, stretch)).translate(
            (side + 0.45 * major, 0, z))
    return _union(parts + [handle - cavity]), 1


def _lifting_surface(root_le, root_chord, tip_le, tip_chord, span, root_t, tip_t, rise):
    """Half wing (convex hull of its root and tip sections) from x=-0.02 to x=span, chord along +y,
    thickness along z; the tip is raised by `rise`."""
    points = [(x, y, z + s * t / 2) for x, le, c, t, z in ((-0.02, root_le, root_chord, root_t, 0.0),
                                                         (span, tip_le, tip_chord, tip_t, rise))
              for y in (le, le + c) for s in (-1, 1)]
    return _manifold3d().Manifold.hull_points(np.asarray(points, dtype=np.float64))


def _airplane(rng):
    """Airplane, nose towards -y: a hulled or ellipsoidal fuselage, swept tapered wings with dihedral, a
    tailplane (conventional or T-tail), a fin, maybe two or four engines on pylons under the wings."""
    body = rng.uniform(0.045, 0.075)
    tail_r = body * rng.uniform(0.25, 0.45)
    tail = np.array([0.0, 0.5 - tail_r, body - 1.3 * tail_r])  # upswept, below the top line
    if rng.random() < 0.6:
        nose = body * rng.uniform(0.6, 1.0)
        parts = [_manifold3d().Manifold.batch_hull([_sphere(nose, (0, -0.5 + nose, 0)), _sphere(tail_r, tail),
                                                    _sphere(body, (0, -0.25, 0)), _sphere(body, (0, 0.15, 0))])]
    else:
        parts, tail = [_sphere(1.0, (0, 0, 0)).scale((body, 0.5, body))], np.array([0.0, 0.42, 0.0])
    span, chord, taper = rng.uniform(0.375, 0.55), rng.uniform(0.14, 0.26), rng.uniform(0.25, 0.6)
    sweep, lift = math.tan(math.radians(rng.uniform(0.0, 35.0))), math.tan(math.radians(rng.uniform(-2.0, 7.0)))
    root_le, wing_z, root_t = rng.uniform(-0.15, 0.0), rng.uniform(-0.5, 0.5) * body, rng.uniform(0.03, 0.045)
    wing = _lifting_surface(root_le, chord, root_le + span * sweep, taper * chord, span, root_t,
                            rng.uniform(0.024, root_t), span * lift).translate((0, 0, wing_z))
    fin_h, fin_c = rng.uniform(0.1, 0.2), rng.uniform(0.1, 0.16)
    fin_le, fin_sweep = 0.5 - fin_c - 0.02, math.tan(math.radians(rng.uniform(20.0, 45.0)))
    fin_tip = fin_c * rng.uniform(0.4, 0.7)
    fin = _lifting_surface(fin_le, fin_c, fin_le + fin_h * fin_sweep, fin_tip, fin_h, 0.026, 0.024, 0.0)
    parts.append(fin.rotate((0.0, -90.0, 0.0)).translate((0, 0, tail[2] - 0.01)))
    t_tail = rng.random() < 0.25
    tp_c = min(rng.uniform(0.08, 0.13), fin_tip) if t_tail else rng.uniform(0.08, 0.13)
    tp_le = fin_le + fin_h * fin_sweep if t_tail else 0.5 - tp_c - 0.03
    tp_span, tp_sweep = rng.uniform(0.125, 0.2), math.tan(math.radians(rng.uniform(10.0, 35.0)))
    tp_z = tail[2] - 0.01 + fin_h if t_tail else tail[2]
    tailplane = _lifting_surface(tp_le, tp_c, tp_le + tp_span * tp_sweep, tp_c * rng.uniform(0.4, 0.7), tp_span,
                                 0.026, 0.024, 0.0).translate((0, 0, tp_z))
    halves = [wing, tailplane]
    if rng.random() < 0.7:
        pod, pod_len = rng.uniform(0.03, 0.045), rng.uniform(0.12, 0.2)
        xs = [max(rng.uniform(0.3, 0.4) * span, body + pod + 0.03)]
        if rng.random() < 0.4 and xs[0] + 3 * pod + 0.12 < 0.8 * span:
            xs.append(xs[0] + 2 * pod + rng.uniform(0.05, 0.12))
        for x in xs:
            le, z = root_le + x * sweep, wing_z + x * lift
            local_chord = chord * (1 - (1 - taper) * x / span)
            pod_z = z - root_t / 2 - 0.015 - pod
            halves.append(_manifold3d().Manifold.batch_hull([_sphere(pod, (x, le - 0.35 * pod_len, pod_z)),
                                                             _sphere(pod, (x, le + 0.65 * pod_len - pod, pod_z))]))
            pylon = min(0.5 * local_chord, 0.3 * pod_len)
            halves.append(_box((0.026, pylon, z - pod_z), (x, le + 0.005 + pylon / 2, (z + pod_z) / 2)))
    return _union(parts + halves + [h.mirror((1.0, 0.0, 0.0)) for h in halves]), 0


_BUILDERS = {"chair": _chair, "table": _table, "lamp": _lamp, "mug": _mug, "airplane": _airplane}


def generate_shape(family: str, seed: int) -> trimesh.Trimesh:
    """Shape `seed` of `family`: a watertight, outward-oriented mesh, y up, its bounding box centred at
    the origin with longest side 1; deterministic. metadata: family, seed and genus (its design's)."""
    if family not in _BUILDERS:
        raise ConfigError(f"unknown shape family {family!r}; the known families are {', '.join(FAMILIES)}")
    solid, genus = _BUILDERS[family](np.random.default_rng(int(seed) & _WORD))
    solid, name = solid.rotate((-90.0, 0.0, 0.0)), f"procedural {family} (seed {seed})"
    bodies = len(solid.decompose())
    if solid.is_empty() or bodies != 1 or solid.genus() != genus:
        raise ShapeError(name, f"expected one solid of genus {genus}, built {bodies} bodies of genus "
                               f"{solid.genus()} (status {solid.status()})")
    mesh = solid.to_mesh()
    vertices = np.asarray(mesh.vert_properties, dtype=np.float64)[:, :3]
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    vertices = (vertices - (low + high) / 2) / float((high - low).max())
    result = trimesh.Trimesh(vertices, np.asarray(mesh.tri_verts, dtype=np.int64), process=False)
    if not (result.is_watertight and result.is_winding_consistent and result.volume > 0):
        raise ShapeError(name, "the built mesh is not a closed, outward-oriented solid")
    result.metadata.update(family=family, seed=int(seed), genus=genus)
    return result


def collection_plan(config: GeneratorConfig) -> list[tuple[str, str, int, str]]:
    """(shape_id, family, seed, split) of every shape, family by family. Shape k is "<family>_<k:03d>",
    its seed from SeedSequence(config.seed, spawn_key=(family's index in FAMILIES, 0, k)); per_family ·
    test_fraction of each family (nearest, halves up; at least 1 and at most per_family - 1 when
    per_family >= 2) are "test", chosen with spawn_key (family's index, 1). A family's plan depends
    only on the seed, per_family and test_fraction, not on the other families listed."""
    if len(set(config.families)) != len(config.families):
        raise ConfigError(f"generator.families: a family is listed twice in {list(config.families)}")
    entropy, width, count = int(config.seed) & _WORD, max(3, len(str(config.per_family - 1))), config.per_family
    n_test = 0 if count < 2 else min(max(int(math.floor(count * config.test_fraction + 0.5)), 1), count - 1)
    plan = []
    for family in config.families:
        number = FAMILIES.index(family)
        chooser = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(number, 1)))
        test = set(chooser.choice(count, n_test, replace=False).tolist())
        for k in range(count):
            seed = int(np.random.SeedSequence(entropy, spawn_key=(number, 0, k)).generate_state(1, np.uint32)[0])
            plan.append((f"{family}_{k:0{width}d}", family, seed, "test" if k in test else "train"))
    return plan


def manifest_text(config: GeneratorConfig, plan, name: str) -> str:
    """The manifest (YAML): name, description, generator settings, {id, path, split, family} per shape."""
    families = ", ".join(config.families)
    description = (f"procedural shape collection (families {families}; {config.per_family} each, "
                   f"seed {config.seed}), made by inrflow")
    lines = [f"name: {json.dumps(name)}", f"description: {json.dumps(description)}",
             f"generator: {{families: [{families}], per_family: {config.per_family}, "
             f"test_fraction: {float(config.test_fraction)!r}, seed: {int(config.seed)}}}", "shapes:"]
    lines += [f"  - {{id: {shape_id}, path: meshes/{shape_id}.obj, split: {split}, family: {family}}}"
              for shape_id, family, _, split in plan]
    return "\n".join(lines) + "\n"


def write_collection(out_dir, config: GeneratorConfig, name: str = "generated") -> Path:
    """Write every planned shape to out_dir/meshes/<shape_id>.obj (atomically; a file already holding
    the same text is left alone) and then out_dir/manifest.yaml, whose path is returned."""
    out_dir = Path(out_dir)
    plan = collection_plan(config)
    for shape_id, family, seed, _ in plan:
        path = out_dir / "meshes" / f"{shape_id}.obj"
        text = trimesh.exchange.obj.export_obj(generate_shape(family, seed), include_normals=False,
                                               include_color=False, include_texture=False, header=None)
        if not (path.is_file() and path.read_text() == text):
            write_text_atomic(path, text)
    return write_text_atomic(out_dir / "manifest.yaml", manifest_text(config, plan, name))
