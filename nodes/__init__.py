"""ComfyUI node classes (thin: validate inputs, call model/, shape outputs)."""
from .builtin import CamGridBuiltinModel
from .context_windows import CamGridContextWindows
from .decode import CamGridDecode, CamGridSelectView
from .latent import CamGridEmptyLatent, CamGridSourceVideo
from .loader import CamGridModelLoader
from .lora import CamGridLora
from .rig import CamGridCameraEncode, CamGridLoadRig, CamGridRig, CamGridRigPreview
from .sampler import CamGridSampler
from .sampler_options import CamGridSamplerOptions

_NODES = {
    CamGridModelLoader: "CamGrid Model Loader",
    CamGridLora: "CamGrid LoRA",
    CamGridBuiltinModel: "CamGrid Built-in Model (tiny)",
    CamGridRig: "CamGrid Camera Rig",
    CamGridLoadRig: "CamGrid Load Rig",
    CamGridRigPreview: "CamGrid Rig Preview",
    CamGridCameraEncode: "CamGrid Camera Encode",
    CamGridEmptyLatent: "CamGrid Empty Latent",
    CamGridSourceVideo: "CamGrid Source Video",
    CamGridSampler: "CamGrid Sampler",
    CamGridContextWindows: "CamGrid Context Windows",
    CamGridSamplerOptions: "CamGrid Sampler Options",
    CamGridDecode: "CamGrid Decode",
    CamGridSelectView: "CamGrid Select View",
}
NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in _NODES}
NODE_DISPLAY_NAME_MAPPINGS = {cls.__name__: name for cls, name in _NODES.items()}
