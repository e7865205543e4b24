"""Recipes → images: where decode and augmentation run, on the CPU or on the training device.

A dataset item in *recipe* form names the raw frames it needs (undecoded bytes and their
descriptors, :class:`medcl.io.pixels.RawImage`) and, per output key, the views to cut from them
(their augmentation parameters, already drawn from the item's seeded generator):

    {"raws": [RawImage, ...],                          # 1..M frames this item needs
     "requests": {"views": Request(slots=[0, 1], params=(G, V, 13), shape=224), ...},
     "index": row, "person": p, ...}                  # everything else is stacked as usual

:func:`collate_raw` packs a list of recipes into one batch: every frame's bytes in one uint8
tensor (pinned by the DataLoader, so the copy to the GPU is one asynchronous transfer) and the
view parameters stacked. :func:`render` then decodes every frame (``decode_pixels``) and cuts
every view (``augment``) in a few batched op calls — on the GPU in the training process
(``--decode gpu``), or on the CPU inside the DataLoader workers (``--decode cpu``, and the
default :func:`render_collate`). :func:`loader_collate` picks the collate for a decode place,
:func:`decode_place` resolves ``--decode``, and :class:`DeviceBatches` moves each batch to the
device and renders it there when decoding on the GPU. The result has each key as
a tensor: (B, K, 1, h, w), or (B, 1, h, w) for a request with ``squeeze``; a request's ``mode``
says how its frames are sampled: "image" through the augment op (antialiased, with the view's
tone), "mask" nearest (:func:`medcl.data.geometry.warp_mask`: labels are never blended). A frame that fails to
decode drops its item; the item comes back as a :class:`~medcl.data.bad_samples.Skipped`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from medcl.data.bad_samples import Skipped
from medcl.data.geometry import output_shape, warp_mask
from medcl.errors import ConfigError

MODES = ("image", "mask")


@dataclass
class Request:
    """The views of one output key of one item."""

    slots: list          # (G,) which of the item's raws each group of views is cut from
    params: torch.Tensor  # (G, V, 13) float64 op parameters (medcl.data.geometry.ViewParams rows)
    shape: tuple         # output (h, w) in pixels; an int S means S × S
    pick: torch.Tensor | None = None  # (K,) int64 indices into the G·V views (None: all, in order)
    squeeze: bool = False  # one view per item: output (B, 1, h, w) instead of (B, 1, 1, h, w)
    fit: str | None = None  # how the params fit a non-square image (medcl.data.fit; for the log line)
    mode: str = "image"  # "image": the augment op's antialiased sampling; "mask": nearest, no tone

    def __post_init__(self):
        self.shape = output_shape(self.shape)
        if self.mode not in MODES:
            raise ValueError(f"Request mode {self.mode!r} is not one of {MODES}")


def stack_items(values: list):
    """Items (dicts of tensors and numbers) → one dict of stacked tensors."""
    first = values[0]
    if isinstance(first, dict):
        return {k: stack_items([v[k] for v in values]) for k in first}
    if isinstance(first, torch.Tensor):
        return torch.stack(values)
    return torch.as_tensor(values)


def collate_raw(items: list) -> dict:
    """Recipes (and Skipped markers) → a packed batch; see the module docstring.

    Returns the stacked plain fields plus "packed" (medcl.io.pixels.pack_raw of every frame),
    "requests" {key: {"src": (B·G,) frame index, "params": (B·G, V, 13), "pick": (B, K) | None,
    "shape", "mode", "squeeze"}}, "paths" (one display path per frame, for the bad-sample log),
    "n", "skipped", "seen", and "nonsquare" {fit: count of non-square frames} (the Loader pops it
    and says once how such images are fitted).
    """
    from medcl.io.pixels import pack_raw

    skipped = [it for it in items if isinstance(it, Skipped)]
    good = [it for it in items if it is not None and not isinstance(it, Skipped)]
    batch = {"n": len(good), "skipped": skipped, "seen": len(skipped) + len(good)}
    if not good:
        return batch
    raws, owners, starts = [], [], []
    for k, it in enumerate(good):
        starts.append(len(raws))
        raws.extend(it["raws"])
        owners.extend([k] * len(it["raws"]))
    batch["packed"] = pack_raw(raws)
    fit = next((r.fit for r in good[0]["requests"].values() if r.fit), None)
    if fit is not None:
        batch["nonsquare"] = {fit: sum(int(r.rows != r.columns) for r in raws)}
    batch["owner"] = torch.tensor(owners, dtype=torch.int64)                 # (R,) item of each frame
    batch["frame_info"] = [x for it in good for x in it["info"]]             # (row, display path, epoch) per frame
    requests = {}
    for key, first in good[0]["requests"].items():
        reqs = [it["requests"][key] for it in good]
        src = torch.tensor([starts[k] + s for k, r in enumerate(reqs) for s in r.slots], dtype=torch.int64)
        params = torch.cat([r.params for r in reqs])                          # (B·G, V, 13)
        pick = None if first.pick is None else torch.stack([r.pick for r in reqs])  # (B, K)
        requests[key] = {"src": src, "params": params, "pick": pick, "shape": first.shape, "mode": first.mode,
                         "squeeze": first.squeeze}
    batch["requests"] = requests
    rest = [{k: v for k, v in it.items() if k not in ("raws", "requests", "info")} for it in good]
    batch.update(stack_items(rest))
    return batch


def render(batch: dict, device=None, *, dtype: torch.dtype = torch.float32) -> dict:
    """Decode and augment a :func:`collate_raw` batch on ``device`` (default: where it is).

    Returns the batch with each requested key as a ``dtype`` tensor and the packed fields
    removed; items with a frame that failed to decode are dropped and listed under "skipped"
    (appended to any already there).
    """
    from medcl.io.pixels import decode_packed
    from medcl.ops import augment

    if "packed" not in batch:
        return batch
    device = torch.device(device) if device is not None else batch["packed"]["data"].device
    packed = batch.pop("packed")
    info = batch.pop("frame_info")
    owner = batch.pop("owner")
    images, sizes, status = decode_packed(packed, device)                       # (R, H, W), (R, 2), (R,)
    for key, r in batch.pop("requests").items():
        src = r["src"].to(device)
        imgs, sz = (images, sizes) if _is_identity(r["src"], images.shape[0]) else \
            (images.index_select(0, src), sizes.index_select(0, src))
        h, w = r["shape"]
        if r["mode"] == "mask":
            out = warp_mask(imgs, r["params"].to(device), out_size=(h, w), sizes=sz).to(dtype)
        else:
            out = augment(imgs, r["params"].to(device), out_size=(h, w), views=r["params"].shape[1],
                          dtype=dtype, sizes=sz)                                # (B·G, V, h, w)
        B = int(batch["n"])
        out = out.reshape(B, -1, 1, h, w)                                       # (B, G·V, 1, h, w)
        if r["pick"] is not None:
            pick = r["pick"].to(device)
            out = torch.gather(out, 1, pick.view(B, -1, 1, 1, 1).expand(-1, -1, 1, h, w))
        batch[key] = out[:, 0] if r["squeeze"] else out
    status = status.cpu()
    if bool(status.ne(0).any()):
        _drop_failed(batch, owner, status, info)
    return batch


def _is_identity(src: torch.Tensor, n: int) -> bool:
    return src.numel() == n and bool(torch.equal(src, torch.arange(n)))


def _drop_failed(batch: dict, owner: torch.Tensor, status: torch.Tensor, info) -> None:
    """Removes the items owning a failed frame (status ≠ 0) from every per-item field of ``batch``."""
    from medcl.io.pixels import status_reason

    bad = status != 0
    B = int(batch["n"])
    failed = torch.zeros(B, dtype=torch.bool)
    failed[owner[bad]] = True
    markers = []
    for f in bad.nonzero().flatten().tolist():
        row, path, epoch = info[f]
        markers.append(Skipped(index=int(row), path=path, reason=f"DicomError: {status_reason(int(status[f]))}",
                               epoch=int(epoch)))
    keep = (~failed).nonzero().flatten()

    def select(v):
        if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == B:
            return v.index_select(0, keep.to(v.device))
        if isinstance(v, dict):
            return {k: select(x) for k, x in v.items()}
        return v

    for k in list(batch):
        if k not in ("n", "skipped", "seen"):
            batch[k] = select(batch[k])
    batch["n"] = int(keep.numel())
    batch["skipped"] = list(batch.get("skipped", [])) + markers


def render_collate(items: list) -> dict:
    """collate_raw + render on the CPU: the collate of DataLoader workers for ``--decode cpu``."""
    return render(collate_raw(items), "cpu")


def loader_collate(decode: str):
    """The DataLoader collate for a decode place: "gpu" → :func:`collate_raw` (workers read
    bytes only; :class:`DeviceBatches` renders on the device), "cpu" → :func:`render_collate`."""
    return collate_raw if decode == "gpu" else render_collate


def decode_place(decode: str, device) -> str:
    """``--decode`` ("auto" | "gpu" | "cpu") on ``device`` → "gpu" or "cpu"; "auto" decodes on
    the GPU when the run is on CUDA."""
    if decode not in ("auto", "gpu", "cpu"):
        raise ConfigError(f"--decode {decode!r} is not supported", fix="use gpu, cpu or auto")
    device = torch.device(device)
    if decode == "gpu" and device.type != "cuda":
        raise ConfigError(f"--decode gpu needs a CUDA device, and this run is on {device.type}",
                          fix="use --decode cpu, or --device cuda")
    return "gpu" if decode == "gpu" or (decode == "auto" and device.type == "cuda") else "cpu"


def to_device(batch: dict, device) -> dict:
    """The batch with its tensors (also those in nested dicts) moved to ``device`` asynchronously
    (from pinned memory); other values as they are."""
    def move(v):
        if isinstance(v, torch.Tensor):
            return v.to(device, non_blocking=True)
        if isinstance(v, dict):
            return {k: move(x) for k, x in v.items()}
        return v

    return {k: move(v) for k, v in batch.items()}


class DeviceBatches:
    """The batches of ``loader`` on ``device``, rendered there when ``decode`` is "gpu" (the
    loader then collates with :func:`collate_raw`); items whose frames failed to decode on the
    device are recorded in ``bad_log`` (the loader records those skipped in its workers)."""

    def __init__(self, loader, device, decode: str, bad_log=None):
        self.loader, self.device, self.decode, self.bad_log = loader, device, decode, bad_log

    def __iter__(self):
        for b in self.loader:
            b = to_device(b, self.device)
            if self.decode == "gpu":
                b = render(b, self.device)
                skipped = b.pop("skipped", [])
                if self.bad_log is not None and skipped:
                    self.bad_log.record(skipped, 0)
            yield b

    def __len__(self) -> int:
        return len(self.loader)

