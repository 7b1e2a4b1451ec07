"""3D RoPE of Wan2.1 for the DiT: the tables and the torch rotation live in kernels/rope.py (one
implementation, shared by the Triton kernels' references); these are the names the model uses."""
from ..kernels.rope import rope_apply_reference as rope_apply  # noqa: F401
from ..kernels.rope import rope_axis_dims  # noqa: F401
from ..kernels.rope import rope_cos_sin as rope_table  # noqa: F401
