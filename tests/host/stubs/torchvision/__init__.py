"""Stand-in for torchvision when the host test server runs on a machine without a usable build.

Why: ComfyUI's core (`comfy.sd` -> Stable Cascade / Cosmos / ACE models) does `import torchvision`
at import time, but PyPI only has CUDA-linked torchvision wheels, which fail to load next to a
CPU-only torch. None of the nodes camgrid's workflows use touch torchvision, so the host tests
put this package on the server's PYTHONPATH (only when the real one cannot be imported): imports
succeed and any actual use fails loudly with the reason.
"""
__version__ = "0.0.0+camgrid.stub"


def _missing(name):
    raise RuntimeError(
        f"torchvision.{name} is not available: the camgrid host tests run ComfyUI with a torchvision "
        "stub because no torchvision build matches the installed CPU torch; install a matching "
        "torchvision to use nodes that need it"
    )


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    _missing(name)
