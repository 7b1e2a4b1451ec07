"""Stub submodule: see torchvision/__init__.py in this folder for why it exists."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from .. import _missing

    _missing("transforms." + name)
