"""ComfyUI's services when running inside ComfyUI; plain equivalents otherwise.

Progress bar, interrupt check, input/output folders and model folders. This
is the only place in the pack that imports ComfyUI modules.
"""
from __future__ import annotations

import os
import weakref
from contextlib import contextmanager

import torch

from vsr_core.api import InputError, Reporter, TerminalReporter

try:  # inside ComfyUI
    import comfy.model_management
    import comfy.model_patcher
    import comfy.utils
    import folder_paths
    IN_COMFYUI = True
except ImportError:
    IN_COMFYUI = False


class ComfyReporter(Reporter):
    """Drives ComfyUI's progress bar; every update is also a point where Cancel works."""

    def __init__(self):
        self.bar = None
        self.total, self.done, self.desc, self.t0, self.next_note = 0, 0, "", 0.0, 0.0

    def start(self, total: int, desc: str = "") -> None:
        import time
        self.bar = comfy.utils.ProgressBar(max(int(total), 1))
        self.total, self.done, self.desc, self.t0 = int(total), 0, desc, time.monotonic()
        self.next_note = self.t0 + 10

    def update(self, n: int = 1) -> None:
        import time
        if self.bar is not None:
            self.bar.update(n)
        self.done += n
        now = time.monotonic()
        if self.total and self.done and now >= self.next_note:      # frames done and ETA, every 10 s
            eta = (now - self.t0) / self.done * max(self.total - self.done, 0)
            print(f"[VSR] {self.desc}: {self.done}/{self.total}, ETA {int(eta // 60)}m{int(eta % 60):02d}s")
            self.next_note = now + 10

    def check_interrupt(self) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()

    def log(self, message: str) -> None:
        print(f"[VSR] {message}")


_patchers: "weakref.WeakKeyDictionary[torch.nn.Module, object]" = weakref.WeakKeyDictionary()


def managed(module: torch.nn.Module):
    """The module's ModelPatcher (made once): how ComfyUI loads, counts and unloads a model."""
    patcher = _patchers.get(module)
    if patcher is None:
        mm = comfy.model_management
        patcher = comfy.model_patcher.ModelPatcher(module, load_device=mm.get_torch_device(),
                                                   offload_device=mm.unet_offload_device())
        _patchers[module] = patcher
    return patcher


@contextmanager
def on_compute_device(module, offload_after: bool = True):
    """Run a stage with one of the pack's models loaded through ComfyUI's model management:
    ModelPatcher + load_models_gpu put it on ComfyUI's device, count it in ComfyUI's memory
    estimates and unload other models if it needs the room (and ComfyUI may unload it later
    for theirs). With `offload_after` it is unloaded as soon as the stage ends. Outside
    ComfyUI (tests, command line) nothing moves."""
    if not IN_COMFYUI or not isinstance(module, torch.nn.Module):
        yield
        return
    mm = comfy.model_management
    patcher = managed(module)
    mm.load_models_gpu([patcher])
    try:
        yield
    finally:
        if offload_after:
            for loaded in [m for m in mm.current_loaded_models if m.model is patcher]:
                loaded.model_unload()
                mm.current_loaded_models.remove(loaded)
            mm.soft_empty_cache()


def compute_device() -> torch.device:
    return comfy.model_management.get_torch_device() if IN_COMFYUI else torch.device("cpu")


def free_memory(device: torch.device | None = None):
    """What the upscaler may use (vsr_core.pipeline.memory_plan.FreeMemory): ComfyUI's own figures inside
    ComfyUI (free RAM, and free VRAM on a GPU, counting what its model management could release), the
    machine's outside."""
    from vsr_core.api import FreeMemory
    device = torch.device(device or compute_device())
    if not IN_COMFYUI:
        return FreeMemory.of(device)
    mm = comfy.model_management
    ram = int(mm.get_free_memory(torch.device("cpu")))
    return FreeMemory(ram, None if device.type == "cpu" else int(mm.get_free_memory(device)))


def make_reporter() -> Reporter:
    return ComfyReporter() if IN_COMFYUI else TerminalReporter()


_headless_output: str | None = None      # the headless runner's --output-dir (run_workflow.py)


@contextmanager
def headless_output_directory(path: str | None):
    """Outside ComfyUI: where Save nodes write inside this block (None: the default)."""
    global _headless_output
    previous, _headless_output = _headless_output, os.path.abspath(path) if path else None
    try:
        yield
    finally:
        _headless_output = previous


def input_directory() -> str:
    if IN_COMFYUI:
        return folder_paths.get_input_directory()
    return os.environ.get("VSR_INPUT_DIR", os.getcwd())


def output_directory() -> str:
    if IN_COMFYUI:
        return folder_paths.get_output_directory()
    return _headless_output or os.environ.get("VSR_OUTPUT_DIR", os.path.join(os.getcwd(), "output"))


def temp_directory() -> str:
    """Where streaming nodes write their results and resume caches (ComfyUI's temp folder)."""
    if IN_COMFYUI:
        return folder_paths.get_temp_directory()
    import tempfile
    return os.environ.get("VSR_TEMP_DIR", os.path.join(tempfile.gettempdir(), "vsr"))


class FileVideo:
    """Outside ComfyUI: a VIDEO backed by a file, with the part of core VIDEO's interface the pack uses."""

    def __init__(self, path: str):
        self.path = path

    def get_stream_source(self) -> str:
        return self.path


def video_from_file(path: str):
    """A core VIDEO backed by `path` (core Save Video copies its packets instead of decoding every frame)."""
    if IN_COMFYUI:
        from comfy_api.latest import InputImpl
        return InputImpl.VideoFromFile(path)
    return FileVideo(path)


def input_videos() -> list[str]:
    """What Load Video (VSR) offers: the videos, animated GIF/WebP files and frame folders of the input
    folder (one level down too, as ComfyUI's own pickers show subfolders), as paths relative to it."""
    from vsr_core.api import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
    root = input_directory()
    found = []
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        dirs[:] = [d for d in sorted(dirs) if not d.startswith(".")] if rel == "." else []
        names = [f for f in files if not f.startswith(".")]
        found += [os.path.normpath(os.path.join(rel, f)) for f in names
                  if f.lower().endswith(VIDEO_EXTENSIONS + (".gif", ".webp"))]
        if rel != "." and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in names):
            found.append(rel)                       # a folder of numbered frames
    return sorted(found, key=str.lower)


def resolve_input_path(path: str) -> str:
    """An absolute path as given; a relative one is looked up in ComfyUI's input folder first, then the
    working folder; when it is in neither, the error names both places searched."""
    path = os.path.expanduser(path.strip().strip('"'))
    if os.path.isabs(path):
        return path
    candidate = os.path.join(input_directory(), path)
    if os.path.exists(candidate):
        return candidate
    if os.path.exists(path):
        return os.path.abspath(path)
    raise InputError(f"video '{path}' was not found in the input folder '{input_directory()}' (nor in "
                     f"'{os.getcwd()}'); expected a file there, or an absolute path")


def register_model_folder(kind: str, extensions: set[str]) -> None:
    """Make models/<kind>/ a ComfyUI model folder, so combos list its files."""
    if not IN_COMFYUI:
        return
    folder = os.path.join(folder_paths.models_dir, kind)
    if kind in folder_paths.folder_names_and_paths:
        paths, exts = folder_paths.folder_names_and_paths[kind]
        if folder not in paths:
            paths.append(folder)
        exts.update(extensions)
    else:
        folder_paths.folder_names_and_paths[kind] = ([folder], set(extensions))


def model_search_dirs(kind: str) -> list[str]:
    """Folders that hold models of `kind`: ComfyUI's, or $VSR_MODELS_DIR/<kind> and ./models/<kind>."""
    if IN_COMFYUI:
        return list(folder_paths.get_folder_paths(kind))
    roots = [p for p in os.environ.get("VSR_MODELS_DIR", "").split(os.pathsep) if p]
    roots.append(os.path.join(os.getcwd(), "models"))
    return [os.path.join(r, kind) for r in roots]


def list_models(kind: str, extensions: tuple[str, ...]) -> list[str]:
    """File names of the models of `kind` found in its folders (for combo inputs)."""
    names = set()
    for folder in model_search_dirs(kind):
        if os.path.isdir(folder):
            for root, _dirs, files in os.walk(folder):
                for f in files:
                    if f.lower().endswith(extensions):
                        names.add(os.path.relpath(os.path.join(root, f), folder))
    return sorted(names)


def model_path(kind: str, name: str) -> str | None:
    """The full path of a model file listed by list_models, or None."""
    for folder in model_search_dirs(kind):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


NONE_FOUND = "none found"


def model_choices(kinds: tuple[str, ...], extensions: tuple[str, ...]) -> list[str]:
    """Combo entries: the model files of every folder kind, or a 'none found' marker."""
    names = sorted({n for kind in kinds for n in list_models(kind, extensions)})
    return names or [NONE_FOUND]


def resolve_model(name: str, kinds: tuple[str, ...], what: str) -> str:
    """The path of a combo entry, or an error that says where to put the file."""
    if name == NONE_FOUND:
        raise InputError(f"no {what} file found; put one in ComfyUI/models/{kinds[0]}/"
                         + (f" (or {', '.join(kinds[1:])})" if kinds[1:] else "") + " and refresh")
    for kind in kinds:
        path = model_path(kind, name)
        if path:
            return path
    raise InputError(f"{what} '{name}' is not in ComfyUI/models/{kinds[0]}/"
                     + (f" (nor in {', '.join(kinds[1:])})" if kinds[1:] else "")
                     + "; put the file there and refresh (R), or pick one from the list")


def missing_model(name: str, kinds: tuple[str, ...], what: str, defaults=()) -> str | bool:
    """For VALIDATE_INPUTS: True when `name` resolves, else the message saying where to put it (shown
    when the prompt is queued, in place of ComfyUI's bare 'Value not in list')."""
    if name in defaults:
        return True
    try:
        resolve_model(name, kinds, what)
    except InputError as err:
        return str(err)
    return True


# -- core ComfyUI model types (MODEL, VAE, CONDITIONING) --------------------------

def is_core_model(obj) -> bool:
    """A core ComfyUI MODEL (a ModelPatcher), as opposed to the pack's VSR_DIFFUSION."""
    return hasattr(obj, "model") and hasattr(obj, "model_options") and hasattr(obj, "patch_model")


def is_core_vae(obj) -> bool:
    """A core ComfyUI VAE (comfy.sd.VAE), as opposed to the pack's VSR_VAE (an nn.Module)."""
    return hasattr(obj, "first_stage_model") and hasattr(obj, "decode_tiled")


def context_from_conditioning(conditioning):
    """The cross-attention tensor [1,L,D] of a ComfyUI CONDITIONING ([[tensor, {...}], ...])."""
    try:
        return conditioning[0][0].detach().float().cpu()
    except (TypeError, IndexError, AttributeError):
        raise InputError("conditioning is not a ComfyUI CONDITIONING; expected the output of a CLIP Text "
                         "Encode node") from None


def core_model_denoiser(patcher, context):
    """Wrap a core MODEL so the pack's video sampler can drive it (k-diffusion space adapter)."""
    from vsr_core.api import SigmaDenoiser

    comfy.model_management.load_models_gpu([patcher])
    base = patcher.model
    device = comfy.model_management.get_torch_device()
    dtype = base.get_dtype() if hasattr(base, "get_dtype") else torch.float32
    alphas_cumprod = (1.0 / (1.0 + base.model_sampling.sigmas.float() ** 2)).cpu()

    def denoise(x_k, sigma, ctx):
        out = base.apply_model(x_k.to(device, dtype), sigma.to(device), c_crossattn=ctx.to(device, dtype))
        return out.to(x_k)

    return SigmaDenoiser(denoise, alphas_cumprod, context=context,
                         latent_scale=float(base.latent_format.scale_factor))


def core_vae_encode(vae, frames_thwc):
    """Core VAE: IMAGE [T,H,W,3] -> unscaled latents [T,4,h,w]."""
    return vae.encode(frames_thwc[..., :3]).float().cpu()


def core_vae_decode(vae, latents):
    """Core VAE: unscaled latents -> IMAGE [T,H,W,3]."""
    images = vae.decode(latents)
    return images.reshape(-1, *images.shape[-3:]).float().cpu()


def is_core_upscale_model(obj) -> bool:
    """A core UPSCALE_MODEL (spandrel descriptor), as opposed to the pack's VSR_UPSCALER (an nn.Module)."""
    return not isinstance(obj, torch.nn.Module) and hasattr(obj, "scale") and hasattr(obj, "model") \
        and callable(obj)


def core_upscale_frames(upscale_model, frames_thwc):
    """Run a core UPSCALE_MODEL frame by frame, as core ImageUpscaleWithModel does (512 tiles)."""
    device = comfy.model_management.get_torch_device()
    upscale_model.to(device)
    try:
        images = frames_thwc.movedim(-1, -3).to(device)
        out = comfy.utils.tiled_scale(images, lambda a: upscale_model(a), tile_x=512, tile_y=512, overlap=32,
                                      upscale_amount=upscale_model.scale)
    finally:
        upscale_model.to("cpu")
    return out.movedim(-3, -1).clamp(0, 1).float().cpu()
