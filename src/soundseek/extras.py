"""Optional dependencies: one place that turns a missing one into a message naming the
extra that installs it (``pip install soundseek[serve]``)."""
from __future__ import annotations

import importlib
from types import ModuleType

# module -> (extra, what needs it)
EXTRAS = {
    "fastapi": ("serve", "the HTTP service and web page"),
    "uvicorn": ("serve", "the HTTP service and web page"),
    "python_multipart": ("serve", "audio uploads to the HTTP service"),
    "pymilvus": ("milvus", "the Milvus index backend"),
    "milvus_lite": ("milvus", "a local Milvus Lite index file"),
    "tensorboard": ("train", "TensorBoard logging"),
    "matplotlib": ("train", "plots"),
    "playwright": ("test", "the browser tests"),
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra."""


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` saying which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        extra, what = EXTRAS.get(top, (None, None))
        if extra is None:
            raise
        raise MissingExtraError(f"{what} needs {top}, which is not installed: pip install 'soundseek[{extra}]'") from e
