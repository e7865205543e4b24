"""Write one synthetic chest radiograph as a DICOM CR Image Storage file.

Everything in the file is a function of its arguments: UIDs come from the
caller (derived from the seed), there are no dates or times, and the
implementation UID is medcl's own, so the same inputs give the same bytes
whatever pydicom version is installed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless, generate_uid

from medcl.demo.anatomy import MAX_STORED
from medcl.demo.rle import rle_encode_frame

CR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")
IMPLEMENTATION_UID = generate_uid(entropy_srcs=["medcl", "demo", "implementation"])
IMPLEMENTATION_NAME = "MEDCL_DEMO"
FIELD_OF_VIEW_MM = 430.0  # detector width: pixel spacing = 430 mm / size
RESCALES = ((1.0, 0.0), (1.0, -1024.0), (0.5, 0.0), (2.0, -2048.0))  # (slope, intercept) choices


@dataclass(frozen=True)
class DicomSpec:
    patient_id: str  # the synthetic IID; the only patient attribute besides the name
    study_uid: str  # one study per visit
    series_uid: str  # one series per rendering (standard / bone)
    sop_uid: str  # the instance
    monochrome1: bool  # store inverted values with PhotometricInterpretation MONOCHROME1
    rle: bool  # RLE Lossless instead of Explicit VR Little Endian
    rescale: tuple[float, float]  # (RescaleSlope, RescaleIntercept)
    series_number: int  # 1 standard, 2 bone
    description: str  # SeriesDescription, e.g. "PA" or "PA BONE"
    derived: bool  # ImageType DERIVED\SECONDARY (the bone image) vs ORIGINAL\PRIMARY


def uid_from(*parts) -> str:
    """A DICOM UID determined by parts (seed, IID, visit, role, ...)."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _ds(x: float) -> str:
    """Decimal String without float noise, at most 16 characters."""
    s = f"{x:.6g}"
    return "0" if s == "-0" else s


def build_dataset(pixels: np.ndarray, spec: DicomSpec) -> Dataset:
    """The dataset (with file meta) of one image.

    pixels: (S, S) uint16 in [0, 4095], bright = dense (the MONOCHROME2 sense);
    inverted here when spec.monochrome1 so the image displays the same.
    """
    if pixels.ndim != 2 or pixels.dtype != np.uint16:
        raise ValueError(f"expected (S, S) uint16 pixels, got {pixels.dtype} {pixels.shape}")
    stored = (MAX_STORED - pixels) if spec.monochrome1 else pixels  # (S, S) uint16
    stored = np.ascontiguousarray(stored, dtype="<u2")
    slope, intercept = spec.rescale
    real = stored.astype(np.float64) * slope + intercept
    r0, c0 = real.shape[0] // 5, real.shape[1] // 5
    lo, hi = np.percentile(real[r0:-r0, c0:-c0], [1.0, 99.8])  # central 60% of the image
    lo -= 0.3 * (hi - lo)  # keep the lungs grey rather than black
    rows, cols = stored.shape
    spacing = FIELD_OF_VIEW_MM / cols

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = spec.sop_uid
    meta.TransferSyntaxUID = RLELossless if spec.rle else ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_NAME

    ds = Dataset()
    ds.file_meta = meta
    ds.ImageType = ["DERIVED", "SECONDARY"] if spec.derived else ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = spec.sop_uid
    ds.StudyDate = ""  # type 2, empty: no clock time in the demo
    ds.StudyTime = ""
    ds.AccessionNumber = ""
    ds.Modality = "CR"
    ds.Manufacturer = "medcl demo (synthetic)"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = spec.description
    ds.PatientName = f"DEMO^{spec.patient_id}"
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.StudyID = ""
    ds.SeriesNumber = spec.series_number
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if spec.monochrome1 else "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.PixelSpacing = [_ds(spacing), _ds(spacing)]
    ds.ImagerPixelSpacing = [_ds(spacing), _ds(spacing)]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    ds.WindowCenter = _ds((lo + hi) / 2)
    ds.WindowWidth = _ds(max(hi - lo, 1.0))
    ds.RescaleIntercept = _ds(intercept)
    ds.RescaleSlope = _ds(slope)
    ds.RescaleType = "US"
    ds.LossyImageCompression = "00"
    if spec.rle:
        ds.PixelData = encapsulate([rle_encode_frame(stored)])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = stored.tobytes()
        ds["PixelData"].VR = "OW"
    return ds


def write_radiograph(path: Path, pixels: np.ndarray, spec: DicomSpec) -> None:
    """Write pixels (S, S) uint16, MONOCHROME2 sense, as a DICOM file at path."""
    ds = build_dataset(pixels, spec)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
