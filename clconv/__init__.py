"""clconv: CNN layers as OpenCL kernels, for Raspberry Pi GPUs and any OpenCL device."""
from . import functional
from .arrays import to_numpy
from .build import KernelBuildError
from .caches import clear_caches
from .device import DeviceProfile, DeviceSelectionError
from .runtime import current as current_runtime
from .runtime import use_device

__version__ = "0.1.0"
__all__ = ["functional", "to_numpy", "KernelBuildError", "DeviceProfile",
           "DeviceSelectionError", "current_runtime", "use_device", "clear_caches",
           "__version__"]
