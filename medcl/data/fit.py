"""How a non-square image fills the square input of an encoder (``--fit``).

    pad     (default) the whole image, scaled by its longer side and centred; the bands beside
            it are 0 (black, as the op reads outside an image). Aspect ratio kept, nothing cut.
    crop    the centred square of the shorter side, scaled to fill the input. Aspect ratio
            kept, the ends of the longer side cut.
    squash  the whole image, each axis scaled on its own (medcl's only behaviour before --fit):
            a 288 × 240 image becomes 96 × 96 with circles drawn as ellipses.

The choice is one box per image (:func:`fit_box`, in input pixels, possibly reaching past the
image): the augment op maps the output square onto it, so it costs nothing and runs alike on
CPU and GPU. It applies to every fixed-size tensor: embedding, fine-tuning and validation
inputs, the puzzle's images, `medcl preview`, and the random training views, which are drawn
from :func:`crop_frame`: with ``pad`` from the letterboxed square (so the largest view is the
embedding view), otherwise from the image itself; either way a view's aspect ratio in pixels is
the one drawn from ``crop_ratio``. Square images give the same numbers in every mode.
"""
from __future__ import annotations

import logging
from pathlib import Path

from medcl.errors import ConfigError

log = logging.getLogger("medcl")

FITS = ("pad", "crop", "squash")
DEFAULT_FIT = "pad"
LEGACY_FIT = "squash"   # what a run (config.yaml, weights) written before --fit existed did

_SAID = {
    "pad": "non-square images are letterboxed into the square input: aspect ratio kept, black bands "
           "(--fit pad; crop or squash to change)",
    "crop": "non-square images are centre-cropped to the square input: aspect ratio kept, ends of the "
            "longer side cut (--fit crop)",
    "squash": "non-square images are stretched to the square input: their aspect ratio is NOT kept "
              "(--fit squash)",
}
_said: set = set()


def check_fit(fit: str) -> str:
    """``fit`` if it is one of FITS, else a ConfigError."""
    if fit not in FITS:
        raise ConfigError(f"unknown fit {fit!r} for non-square images", fix=f"use one of {', '.join(FITS)}")
    return fit


def fit_box(height: int, width: int, fit: str = DEFAULT_FIT, aspect: float = 1.0) -> tuple[float, float, float, float]:
    """(top, left, height, width) in input pixels of the box that fills an output of ``aspect``
    (its width / height; 1: a square)."""
    h, w = float(height), float(width)
    if check_fit(fit) == "squash" or w == h * aspect:
        return 0.0, 0.0, h, w
    wider = w > h * aspect                        # the image is wider than the output
    if wider == (fit == "pad"):                   # pad a wide image / crop a tall one: keep its width
        bh, bw = w / aspect, w
    else:                                         # keep its height
        bh, bw = h, h * aspect
    return (h - bh) / 2.0, (w - bw) / 2.0, bh, bw


def crop_frame(height: int, width: int, fit: str = DEFAULT_FIT, aspect: float = 1.0) -> tuple[float, float, int, int]:
    """(top, left, height, width) of the region random crops are drawn from: the letterboxed
    box (of the output's ``aspect``, width / height) for ``pad``, the image for ``crop`` and
    ``squash``."""
    if check_fit(fit) == "pad":
        top, left, bh, bw = fit_box(height, width, "pad", aspect)
        return top, left, int(bh), int(bw)
    return 0.0, 0.0, int(height), int(width)


def announce(fit: str) -> None:
    """One log line per process and fit mode, the first time a non-square image is seen."""
    if fit in _said or fit not in _SAID:
        return
    _said.add(fit)
    log.info(_SAID[fit])


def run_fit(meta: dict, weights) -> tuple[str, str]:
    """(fit, where it came from) of the pretraining run that wrote ``weights``: its metadata
    (``preprocessing.fit``), else ``config.yaml`` of the run folder the file lies in
    (RUN/encoder.safetensors, RUN/checkpoints/*.pt), else the default. Weights whose
    preprocessing record has no fit come from a medcl before --fit, which squashed."""
    preprocessing = (meta or {}).get("preprocessing")
    fit = (preprocessing or {}).get("fit")
    if fit in FITS:
        return fit, "the weights' metadata"
    here = Path(weights).resolve().parent
    for run in (here, here.parent):
        path = run / "config.yaml"
        if path.is_file():
            import yaml
            try:
                from medcl.config import flat_settings
                fit = flat_settings(yaml.safe_load(path.read_text())).get("fit")
            except (OSError, yaml.YAMLError, AttributeError):
                fit = None
            if fit in FITS:
                return fit, str(path)
            break
    if preprocessing:
        return LEGACY_FIT, "weights written before --fit existed"
    return DEFAULT_FIT, "the default"
