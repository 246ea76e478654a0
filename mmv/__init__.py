"""mmv: Self-Supervised MultiModal Versatile Networks (Alayrac et al., NeurIPS 2020) in PyTorch.

The library: backbones, embedding graphs, losses, data, deflation, checkpoints. It never parses
command-line arguments, starts process groups or imports streamlit; ``training/`` and ``app/`` do.
"""

from mmv.config import AudioConfig, HeadConfig, MMVConfig, NormConfig, TextConfig, VideoConfig
from mmv.factory import create_model, get_config, list_models

__version__ = "0.1.0"

__all__ = [
    "AudioConfig",
    "HeadConfig",
    "MMVConfig",
    "NormConfig",
    "TextConfig",
    "VideoConfig",
    "create_model",
    "get_config",
    "list_models",
]
