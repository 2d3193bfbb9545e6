"""Reading and writing frames: videos (PyAV, the only decoder vidseq imports, and only here) and frame folders.

>>> info = probe("v_Jump_g01_c01.avi")                                    # doctest: +SKIP
>>> clip = read_frames("v_Jump_g01_c01.avi", indices=[0, 8, 16], size=64)  # (3, 64, 85, 3) uint8
"""

from vidseq.io.frames import (
    IMAGE_EXTENSIONS,
    decode_image,
    frame_files,
    frame_number,
    is_frame_folder,
    is_frame_name,
    list_frames,
    read_folder_frames,
)
from vidseq.io.index import VideoIndex, build_index, video_index
from vidseq.io.read import decode_plan, frames_decoded, read_frames
from vidseq.io.video import MAX_PIXELS, VIDEO_EXTENSIONS, FrameReader, VideoInfo, is_video_file, probe
from vidseq.io.write import VideoWriter, write_video

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "VIDEO_EXTENSIONS",
    "FrameReader",
    "VideoIndex",
    "VideoInfo",
    "VideoWriter",
    "build_index",
    "decode_image",
    "decode_plan",
    "frame_files",
    "frame_number",
    "frames_decoded",
    "is_video_file",
    "is_frame_folder",
    "is_frame_name",
    "list_frames",
    "probe",
    "read_folder_frames",
    "read_frames",
    "video_index",
    "write_video",
]
