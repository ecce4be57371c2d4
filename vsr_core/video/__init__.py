"""Video in and out: streaming readers, frame selection, audio passthrough, atomic writers."""
from .audio import AudioClip, AudioSegment, AudioStreamRef, decode_audio, probe_audio
from .options import LoadOptions, VideoInfo, to_fraction
from .reader import VideoReader, open_video
from .writer import FORMATS, VideoWriter, format_for_path

__all__ = ["AudioClip", "AudioSegment", "AudioStreamRef", "decode_audio", "probe_audio", "LoadOptions",
           "VideoInfo", "to_fraction", "VideoReader", "open_video", "FORMATS", "VideoWriter", "format_for_path"]
