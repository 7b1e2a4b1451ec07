"""Pure-PyTorch model library: the grid DiT, cameras, sampling, loading. Never imports ComfyUI."""
from .config import DiTConfig, PRESETS, get_config, infer_config
from .checkpoint import CheckpointError, describe, load_grid_dit, read_state_dict, save_grid_dit
from .dit import GridDiT
from .modes import MODES
from .sync import attach_sync_layers, load_sync_weights, save_sync_weights
from .camera import CameraRig, load_rig, relative_extrinsics
from .conditioning import SourceVideo
from .sampling import SamplerOptions, sample_grid
from .lora import apply_lora
