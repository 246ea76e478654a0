"""Media I/O: the project's one place that decodes video and audio and writes media files.

Three libraries, each for what it does best, in four submodules:

* :mod:`~mmv.data.media.probe`: **PyAV** (FFmpeg) opens containers and probes their streams
  (:func:`video_info`, :func:`audio_info`), after the file checks that turn a bad file into a clear
  :class:`MediaError`; the error and the stream descriptions (:class:`VideoInfo`, :class:`AudioInfo`).
* :mod:`~mmv.data.media.video`: **OpenCV** decodes frames (:func:`read_video`, :func:`read_frames_at`,
  :func:`frame_indices`).
* :mod:`~mmv.data.media.audio`: **soundfile** (libsndfile) reads audio windows (:func:`read_audio`);
  container tracks are decoded once by PyAV into a FLAC cache (:func:`extract_audio`); band-limited
  resampling (:func:`resample_audio`).
* :mod:`~mmv.data.media.write`: MP4 (H.264 + AAC) with PyAV and WAV / FLAC with soundfile, written
  atomically (:func:`write_video`, :func:`write_audio`).

The submodules' docstrings hold the details: how frames are sought and decoded, the FLAC cache, and the
exact time conventions of video frames and audio samples. Import from this package
(``from mmv.data.media import read_video``); every public name is re-exported here.

Every failure to read a file raises :class:`MediaError` (see its docstring for the reasons); invalid
arguments (negative times, odd frame sizes, wrong dtypes) raise ``ValueError``.
"""

from mmv.data.media.audio import audio_cache_path, audio_window, extract_audio, read_audio, resample_audio
from mmv.data.media.probe import SOUNDFILE_SUFFIXES, AudioInfo, MediaError, VideoInfo, audio_info, video_info
from mmv.data.media.video import frame_indices, read_frames_at, read_video
from mmv.data.media.write import AAC_SAMPLE_RATES, write_audio, write_video

__all__ = [
    # probe
    "MediaError",
    "VideoInfo",
    "AudioInfo",
    "video_info",
    "audio_info",
    "SOUNDFILE_SUFFIXES",
    # video
    "read_video",
    "read_frames_at",
    "frame_indices",
    # audio
    "read_audio",
    "extract_audio",
    "audio_cache_path",
    "audio_window",
    "resample_audio",
    # write
    "write_video",
    "write_audio",
    "AAC_SAMPLE_RATES",
]
