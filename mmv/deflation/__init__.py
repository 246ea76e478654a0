"""Deflation: embed still images with a video network (spec section 6).

* :mod:`mmv.deflation.networks`: :func:`deflate` (S3D-G: 3-D kernels summed over time; TSM-ResNet: static
  shift, one frame), sharing every weight with the video network but BN gamma/beta;
* :mod:`mmv.deflation.calibrate`: :func:`recalibrate` learns only those gamma/beta with the paper's L1 between the
  deflated output on an image and the video output on the image repeated as a static video;
* :mod:`mmv.deflation.images`: images from a folder or frames from a manifest (:class:`ImageSet`);
* :mod:`mmv.deflation.comparison`: inflated / naive / calibrated embeddings side by side (cosines, retrieval,
  zero-shot classification, time per image);
* :mod:`mmv.deflation.report`: those assembled into one table for labelled manifest frames (the toy world's
  report, :func:`mmv.toyworld.deflation_report.toyworld_report`, hands in its texts and prompts).

The calibrated gamma/beta are stored next to the checkpoint's weights as ``deflation.safetensors``
(:func:`mmv.checkpoint.save_deflation`); :meth:`mmv.models.mmv.MMV.encode_image` uses them when present.
"""

from mmv.deflation.calibrate import (
    TARGETS,
    CalibrationOptions,
    CalibrationReport,
    deflated_outputs,
    inflated_outputs,
    mean_cosine,
    recalibrate,
)
from mmv.deflation.comparison import (
    MODES,
    available_modes,
    compare,
    embed_images,
    zero_shot_classify,
)
from mmv.deflation.images import IMAGE_SUFFIXES, ImageSet, frames_from_manifest, load_image_folder, prepare_image
from mmv.deflation.networks import (
    DeflatedBatchNorm,
    DeflatedConv,
    DeflatedS3DG,
    DeflatedTSMResNet,
    bn_parameters,
    deflate,
    image_space_to_depth,
    inflate,
    video_fingerprint,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "MODES",
    "TARGETS",
    "CalibrationOptions",
    "CalibrationReport",
    "DeflatedBatchNorm",
    "DeflatedConv",
    "DeflatedS3DG",
    "DeflatedTSMResNet",
    "ImageSet",
    "available_modes",
    "bn_parameters",
    "compare",
    "deflate",
    "deflated_outputs",
    "embed_images",
    "frames_from_manifest",
    "image_space_to_depth",
    "inflate",
    "inflated_outputs",
    "load_image_folder",
    "mean_cosine",
    "prepare_image",
    "recalibrate",
    "video_fingerprint",
    "zero_shot_classify",
]
