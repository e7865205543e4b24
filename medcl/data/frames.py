"""Which frame of an image file a manifest row reads: shared by every frame source (the image
files, medcl.data.sources.FileSource; a prepared dataset's shards, medcl.data.shards)."""
from __future__ import annotations

from medcl.errors import DicomError


def check_frame(count: int, frame, path) -> int:
    """The frame to read of a file with ``count`` frames: ``frame``, or for None the only one
    (a DicomError for a multi-frame file, or a frame that does not exist)."""
    if frame is None:
        if count != 1:
            raise DicomError(f"has {count} frames and its manifest row names none", path=path,
                             fix=f"add a frame column (0 to {count - 1}), one row per frame; "
                                 "medcl manifest and medcl prepare write it")
        return 0
    if not 0 <= int(frame) < count:
        raise DicomError(f"has {count} frame(s); frame {int(frame)} does not exist", path=path,
                         fix="frame numbers start at 0")
    return int(frame)
