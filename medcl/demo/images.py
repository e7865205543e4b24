"""Image jobs: one per (individual, visit), each writing a standard and a bone DICOM.

A job carries everything its two files depend on (seed, traits, file
choices), so the files are the same whichever worker renders them and in
whatever order: rendering runs in a process pool when it pays off.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from medcl.demo.anatomy import render_pair, sample_anatomy, sample_pose
from medcl.demo.dicom_write import RESCALES, DicomSpec, uid_from, write_radiograph
from medcl.demo.plan import ANATOMY, FILES, IMAGE, CohortPlan, DemoConfig, stream


@dataclass(frozen=True)
class FileChoice:
    rle: bool  # RLE Lossless transfer syntax
    monochrome1: bool  # stored inverted as MONOCHROME1
    rescale: tuple[float, float]  # (slope, intercept)


@dataclass(frozen=True)
class ImageJob:
    index: int  # individual's row in the plan (keys its anatomy stream)
    iid: str
    visit: int  # 1 baseline, 2 follow-up
    ctr: float
    bone: float
    path: str  # standard image, relative to the cohort root
    bone_path: str  # bone-enhanced image, relative to the cohort root
    standard: FileChoice
    bone_file: FileChoice


def plan_jobs(plan: CohortPlan, seed: int, cfg: DemoConfig) -> list[ImageJob]:
    """All image jobs, sorted by individual then visit; exact RLE / MONOCHROME1 fractions."""
    keys = [(i, v) for i in np.flatnonzero(plan.imaged) for v in range(1, int(plan.visits[i]) + 1)]
    n_files = 2 * len(keys)
    rng = stream(seed, FILES)
    rle = rng.permutation(n_files) < round(cfg.frac_rle * n_files)
    mono1 = rng.permutation(n_files) < round(cfg.frac_monochrome1 * n_files)
    rescale = rng.integers(0, len(RESCALES), size=n_files)
    choices = [FileChoice(bool(rle[k]), bool(mono1[k]), RESCALES[int(rescale[k])]) for k in range(n_files)]
    jobs = []
    for k, (i, v) in enumerate(keys):
        iid = str(plan.iid[i])
        folder = f"images/{i // cfg.folder_size:03d}"
        jobs.append(ImageJob(index=int(i), iid=iid, visit=v, ctr=float(plan.ctr[i]),
                             bone=float(plan.bone_density[i]), path=f"{folder}/{iid}_v{v}.dcm",
                             bone_path=f"{folder}/{iid}_v{v}_bone.dcm",
                             standard=choices[2 * k], bone_file=choices[2 * k + 1]))
    return jobs


def _spec(seed: int, job: ImageJob, bone: bool) -> DicomSpec:
    c = job.bone_file if bone else job.standard
    role = "bone" if bone else "standard"
    key = ("medcl-demo", seed, job.iid, job.visit)
    return DicomSpec(
        patient_id=job.iid, study_uid=uid_from(*key, "study"), series_uid=uid_from(*key, role, "series"),
        sop_uid=uid_from(*key, role, "instance"), monochrome1=c.monochrome1, rle=c.rle, rescale=c.rescale,
        series_number=2 if bone else 1, description="PA BONE" if bone else "PA", derived=bone)


def render_jobs(root: str, size: int, seed: int, jobs: Sequence[ImageJob]) -> int:
    """Render and write the jobs' files under root; returns how many jobs were done."""
    for job in jobs:
        anatomy = sample_anatomy(stream(seed, ANATOMY, job.index), job.ctr, job.bone)
        rng = stream(seed, IMAGE, job.index, job.visit)
        standard, bone = render_pair(size, anatomy, sample_pose(rng), rng)
        for rel, pixels, is_bone in ((job.path, standard, False), (job.bone_path, bone, True)):
            path = Path(root) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            write_radiograph(path, pixels, _spec(seed, job, is_bone))
    return len(jobs)


def run_jobs(root: Path, size: int, seed: int, jobs: list[ImageJob], workers: int | None,
             progress: Callable[[int, int], None]) -> None:
    """Render all jobs, in `workers` processes (None: automatic), reporting progress(done, total)."""
    if workers is None:
        workers = 1 if len(jobs) * size * size < 200 * 256 * 256 else min(4, os.cpu_count() or 1)
    chunk = 16
    batches = [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)]
    done = 0
    progress(0, len(jobs))
    if workers <= 1:
        for batch in batches:
            done += render_jobs(str(root), size, seed, batch)
            progress(done, len(jobs))
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a parent that may hold torch threads
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        futures = [pool.submit(render_jobs, str(root), size, seed, b) for b in batches]
        for fut in futures:
            done += fut.result()
            progress(done, len(jobs))
    finally:  # on error or interrupt, drop the batches not started yet
        pool.shutdown(wait=True, cancel_futures=True)
