"""Procedural chest radiographs: attenuation maps drawn with vectorised numpy.

Geometry lives in "body units": the image spans [-1, 1] in both directions at
scale 1 with no pose; x grows to the image right (the patient's LEFT in a PA
view), y grows downwards. Each structure adds (or, for air, removes)
projected attenuation; the detector maps attenuation linearly to 12-bit
values, so bright = dense (MONOCHROME2 sense).

The planted traits act on two structures only:
    heart half-width = ctr * thorax half-width   (ctr: cardiothoracic ratio)
    bone attenuation x bone                       (ribs, clavicles, spine)
Every other anatomical parameter varies independently between people.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MAX_STORED = 4095  # 12 bits stored


@dataclass(frozen=True)
class Anatomy:
    ctr: float  # cardiothoracic ratio = max heart width / max thoracic width
    bone: float  # bone attenuation multiplier (1 = cohort average)
    thorax_hw: float  # half-width of the rib cage (lungs reach it), body units
    body_hw: float  # half-width of the soft-tissue outline
    apex_y: float  # height of the lung apices
    dia_y: float  # dome of the right hemidiaphragm (image left)
    dia_step: float  # left dome lies this much lower
    heart_cx: float  # heart centre, towards the patient's left (image right)
    heart_dy: float  # heart centre (widest row) this far above the right dome; its bottom hides below
    heart_hh: float  # heart half-height
    rib_gap: float  # vertical spacing of posterior ribs
    soft: float  # soft-tissue thickness multiplier
    bubble: float  # gastric air bubble size (0 = none)


@dataclass(frozen=True)
class Pose:
    angle: float  # in-plane rotation, radians
    tx: float  # translation, body units (image half-width = 1)
    ty: float
    scale: float  # magnification


@dataclass(frozen=True)
class Exposure:
    gain: float  # stored units per unit attenuation
    offset: float  # stored value of zero attenuation
    noise: float  # quantum noise SD, stored units
    tilt: float  # vertical exposure gradient (heel effect), attenuation units


def sample_anatomy(rng: np.random.Generator, ctr: float, bone: float) -> Anatomy:
    """Anatomy of one person: the traits ctr and bone plus independent shape variation."""
    thorax = rng.normal(0.64, 0.025)
    return Anatomy(
        ctr=float(ctr), bone=float(bone), thorax_hw=float(thorax),
        body_hw=float(thorax + rng.normal(0.20, 0.02)),
        apex_y=float(rng.normal(-0.64, 0.03)), dia_y=float(rng.normal(0.40, 0.035)),
        dia_step=float(rng.uniform(0.01, 0.06)), heart_cx=float(rng.normal(0.10, 0.012)),
        heart_dy=float(rng.normal(0.17, 0.015)), heart_hh=float(rng.normal(0.28, 0.015)),
        rib_gap=float(rng.normal(0.105, 0.004)), soft=float(rng.normal(1.0, 0.06)),
        bubble=float(rng.uniform(0.0, 0.07)),
    )


def sample_pose(rng: np.random.Generator) -> Pose:
    return Pose(angle=float(np.deg2rad(rng.uniform(-4.0, 4.0))), tx=float(rng.uniform(-0.05, 0.05)),
                ty=float(rng.uniform(-0.05, 0.05)), scale=float(rng.uniform(0.92, 1.06)))


def sample_exposure(rng: np.random.Generator, bone_image: bool = False) -> Exposure:
    if bone_image:  # dual-energy subtraction images are noisier
        return Exposure(gain=float(rng.uniform(1500, 1900)), offset=float(rng.uniform(300, 500)),
                        noise=float(rng.uniform(18, 30)), tilt=0.0)
    return Exposure(gain=float(rng.uniform(1250, 1550)), offset=float(rng.uniform(250, 450)),
                    noise=float(rng.uniform(8, 16)), tilt=float(rng.uniform(-0.06, 0.06)))


def _dist(dx, dy):
    """Euclidean length, cheaper than np.hypot for float32 arrays."""
    return np.sqrt(dx * dx + dy * dy)


def _ramp(d: np.ndarray, width: float) -> np.ndarray:
    """Soft inside-indicator of a signed distance d (> 0 inside), edge `width` wide."""
    return np.clip(0.5 + d * (1.0 / width), 0.0, 1.0)


@lru_cache(maxsize=8)
def _upsampler(size: int, coarse: int) -> np.ndarray:
    """(size, coarse) linear-interpolation matrix from a coarse grid to pixels."""
    t = np.linspace(0, coarse - 1, size)
    i0 = np.minimum(np.floor(t).astype(int), coarse - 2)
    w = (t - i0).astype(np.float32)
    m = np.zeros((size, coarse), dtype=np.float32)
    m[np.arange(size), i0] = 1 - w
    m[np.arange(size), i0 + 1] = w
    return m


def smooth_noise(rng: np.random.Generator, size: int, coarse: int) -> np.ndarray:
    """(size, size) smooth unit-SD-ish noise: a coarse Gaussian grid, bilinearly upsampled."""
    m = _upsampler(size, coarse)
    g = rng.standard_normal((coarse, coarse)).astype(np.float32)
    return m @ g @ m.T


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2 - 1  # pixel centres in [-1, 1]
    return c[None, :], c[:, None]  # u (1, S) columns, v (S, 1) rows


def _body_coords(size: int, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Body-unit coordinates (x, y) of every pixel, each (S, S)."""
    u, v = _grid(size)
    du, dv = (u - pose.tx) / pose.scale, (v - pose.ty) / pose.scale
    c, s = np.float32(np.cos(pose.angle)), np.float32(np.sin(pose.angle))
    return c * du + s * dv, -s * du + c * dv


def attenuation(size: int, a: Anatomy, pose: Pose, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Soft-tissue and bone attenuation maps, each (S, S) float32, for one pose."""
    x, y = _body_coords(size, pose)
    ax = np.abs(x)  # (S, S) distance from the midline

    # Soft-tissue outline: a flattened (superelliptic) cylinder, wider at the shoulders.
    bw = a.body_hw + 0.22 * _ramp(-0.55 - y, 0.35)  # (S, S)
    q = (x / bw) ** 2
    soft = a.soft * np.sqrt(np.sqrt(np.clip(1.0 - q * q, 0.0, 1.0)))

    # Lungs: per side, between a medial and a lateral edge that open up below
    # the apex, above the diaphragm dome (the left dome lower).
    f = np.sqrt(np.clip((y - a.apex_y) / 0.42, 0.0, 1.0))  # 0 at the apex -> 1
    xc, half = 0.5 * (a.thorax_hw + 0.07), 0.5 * (a.thorax_hw - 0.07)
    dia = a.dia_y + a.dia_step * (x > 0)
    dome = dia + 0.22 * ((ax - 0.30) / 0.34) ** 2
    lung = (_ramp(xc + half * f - ax, 0.02) * _ramp(ax - (xc - half * f), 0.02)
            * _ramp(dome - y, 0.02) * (f > 0))
    lung_depth = lung * (0.55 + 0.45 * f)

    # Heart: an ellipse whose half-width is ctr * thorax half-width.
    hw = a.ctr * a.thorax_hw
    hcy = a.dia_y - a.heart_dy  # widest row of the heart
    r = np.sqrt(((x - a.heart_cx) / hw) ** 2 + ((y - hcy) / a.heart_hh) ** 2)
    heart = _ramp(1.0 - r, 0.035)
    heart_thick = heart * (0.7 + 0.3 * np.sqrt(np.clip(1.0 - r * r, 0.0, 1.0)))
    knob = _ramp(0.05 - _dist(x - 0.09, y - (hcy - a.heart_hh - 0.03)), 0.02)  # aortic knob
    mw = 0.08 + 0.07 * _ramp(y - a.apex_y - 0.25, 0.4)  # upper mediastinum widens downwards
    mediastinum = _ramp(mw - np.abs(x - 0.01), 0.03) * _ramp(hcy - 0.05 - y, 0.1)  # gone by the widest row
    trachea = _ramp(0.022 - ax, 0.01) * _ramp(-0.22 - y, 0.05)
    air = 0.52 * lung_depth * (1.0 - 0.95 * np.maximum(heart, mediastinum))
    hila = np.exp(-_dist(ax - 0.16, y - (hcy - a.heart_hh + 0.02)) / 0.16)  # vessels fan out
    bubble = _ramp(a.bubble - _dist((x - 0.30) * 0.7, y - (dome + a.bubble + 0.03)), 0.02) * (x > 0)
    above = _ramp(dome - y, 0.03)  # below the domes the heart merges with the abdomen
    soft = (soft - air + 0.10 * heart_thick * above + 0.12 * np.maximum(mediastinum, knob)
            - 0.25 * trachea - 0.35 * bubble)
    soft += 0.05 * smooth_noise(rng, size, 10)
    soft += lung * (0.12 * hila + (0.02 + 0.06 * hila) * smooth_noise(rng, size, 48))

    # Bones: spine, posterior and anterior ribs, clavicles.
    vert = 0.8 + 0.2 * np.cos(np.pi * (y - a.apex_y) / 0.045) ** 2  # discs darker
    spine = 0.18 * _ramp(0.055 - ax, 0.02) * vert * _ramp(0.95 - y, 0.05)
    in_cage = _ramp(a.thorax_hw + 0.03 - ax, 0.03) * _ramp(ax - 0.04, 0.02)
    t = (y - a.apex_y - 0.01 + 0.05 * ax - 0.55 * ax * ax) / a.rib_gap  # rib coordinate
    dist = np.abs(t - np.round(t)) * a.rib_gap  # (S, S) to the nearest rib centre line
    ribs_on = (t > -0.5) & (t < 9.5)
    shell = _ramp(0.024 - dist, 0.01)
    cortex = shell - _ramp(0.013 - dist, 0.01)
    post = 0.12 * (shell + 0.6 * cortex) * ribs_on * in_cage
    t2 = (y - a.apex_y - 0.12 - 0.45 * (a.thorax_hw - ax)) / (1.15 * a.rib_gap)
    d2 = np.abs(t2 - np.round(t2)) * a.rib_gap
    ant = 0.07 * _ramp(0.02 - d2, 0.01) * ((t2 > -0.5) & (t2 < 5.5)) * in_cage * _ramp(ax - 0.2, 0.05)
    p0y, p1x, p1y = a.apex_y + 0.09, a.thorax_hw + 0.1, a.apex_y - 0.01
    s = np.clip(((ax - 0.05) * (p1x - 0.05) + (y - p0y) * (p1y - p0y))
                / ((p1x - 0.05) ** 2 + (p1y - p0y) ** 2), 0.0, 1.0)
    dcl = _dist(ax - (0.05 + s * (p1x - 0.05)), y - (p0y + s * (p1y - p0y)))
    clav = 0.2 * _ramp(0.026 - dcl, 0.012)
    bone = a.bone * (spine + post + ant + clav)
    return soft.astype(np.float32), bone.astype(np.float32)


def detect(att: np.ndarray, exp: Exposure, rng: np.random.Generator) -> np.ndarray:
    """(S, S) uint16 stored values in [0, 4095], bright = dense (MONOCHROME2 sense)."""
    size = att.shape[0]
    _, v = _grid(size)
    sig = exp.offset + exp.gain * (att + exp.tilt * v)
    sig += exp.noise * rng.standard_normal(att.shape, dtype=np.float32)
    return np.clip(np.rint(sig), 0, MAX_STORED).astype(np.uint16)


def render_pair(size: int, a: Anatomy, pose: Pose, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """A standard radiograph and its co-registered bone-enhanced image, each (S, S) uint16.

    The bone image is what dual-energy subtraction gives: the same projection
    with soft tissue suppressed to 10% and bone emphasised, with its own noise.
    """
    soft, bone = attenuation(size, a, pose, rng)
    standard = detect(soft + bone, sample_exposure(rng), rng)
    bone_img = detect(0.10 * soft + 1.6 * bone, sample_exposure(rng, bone_image=True), rng)
    return standard, bone_img
