"""`python -m vsr_core upscale INPUT OUTPUT`: the main job."""
from __future__ import annotations

from ..errors import InputError
from ..jobs.upscale import upscale_file
from ..machine import free_cores, set_threads
from ..numbers import finite_float
from ..pipeline.upscale import METHODS, default_method
from .paths import output_folder
from ..progress import TerminalReporter
from ..speed import PRECISIONS
from ..video import FORMATS, LoadOptions


def add_load_arguments(parser) -> None:
    """Frame selection options shared by every command that reads a video."""
    parser.add_argument("--frame-load-cap", type=int, default=0, help="load at most this many frames (0: all)")
    parser.add_argument("--skip-first-frames", type=int, default=0, help="drop this many frames first")
    parser.add_argument("--select-every-nth", type=int, default=1, help="keep one frame in every N")
    parser.add_argument("--force-rate", default=None, help="re-time to this fps first (e.g. 24 or 30000/1001)")
    parser.add_argument("--folder-fps", default="24", help="frame rate of an input image folder")
    parser.add_argument("--allow-damaged", action="store_true",
                        help="read what a damaged or cut-short file still holds (with a warning) instead of failing")
    parser.add_argument("--accept-numbering", action="store_true",
                        help="read a frame folder whose numbers have gaps or duplicates (with a warning): each "
                             "frame keeps the time its number gives, the first file of a number is used")


def load_options(args) -> LoadOptions:
    return LoadOptions(frame_load_cap=args.frame_load_cap, skip_first_frames=args.skip_first_frames,
                       select_every_nth=args.select_every_nth, force_rate=args.force_rate,
                       folder_fps=args.folder_fps, allow_damaged=args.allow_damaged,
                       accept_numbering=args.accept_numbering)


def register(subparsers) -> None:
    p = subparsers.add_parser("upscale", help="upscale a video file or image folder",
                              description="Upscale INPUT (a video or a folder of numbered frames) into OUTPUT "
                                          "(a .mp4/.mkv/.mov file, or a folder for PNG frames), keeping the "
                                          "frame count, fps and audio.")
    p.add_argument("input", nargs="?", help="a video file, an animated GIF/WebP or a folder of numbered frames")
    p.add_argument("output", nargs="?", help="a .mp4/.mkv/.mov file, or a folder for PNG frames")
    p.add_argument("--example", action="store_true",
                   help="upscale the short clip that ships with the pack (160x90, 24 frames): "
                        "`upscale --example OUT.mp4`")
    p.add_argument("--scale", type=int, default=4, choices=(2, 4), help="output size: x2 or x4 the input")
    p.add_argument("--method", default=None, choices=METHODS,
                   help="'learned': the shipped temporally consistent video upscaler (default when its weights "
                        "are installed); 'learned-per-frame': the same network without temporal propagation; "
                        "'detail-per-frame': the detail model (--detail) alone on every frame, the generative "
                        "baseline whose texture changes from frame to frame; 'bicubic': the classical baseline")
    p.add_argument("--weights", default=None,
                   help="a VideoUpscaler .safetensors with its .json card (default: the shipped weights)")
    p.add_argument("--detail", default=None,
                   help="the detail model: realesrgan-x4plus (shipped, Real-ESRGAN x4plus, BSD-3-Clause) or the "
                        "path of a Real-ESRGAN RRDBNet / SRVGGNetCompact checkpoint (.safetensors or .pth). With "
                        "the default method it makes the keyframes whose detail is relayed to every frame by "
                        "motion; --method detail-per-frame runs it alone on every frame (default there: "
                        "realesrgan-x4plus)")
    p.add_argument("--keyframe-every", type=int, default=8,
                   help="with --detail: frames from one keyframe to the next (keyframes also at scene cuts)")
    p.add_argument("--detail-strength", type=finite_float, default=0.8,
                   help="with --detail: how much of the keyframes' detail is let in, 0 (the learned output "
                        "alone) to 1")
    p.add_argument("--format", default=None, choices=FORMATS,
                   help="output format (default: h264 for a video path, png for a folder)")
    p.add_argument("--crf", type=int, default=18, help="h264 quality, 0 (lossless) to 51")
    p.add_argument("--window", type=int, default=12,
                   help="frames processed together (memory grows with it; lowered automatically, and said so, "
                        "when the job would not fit the free memory)")
    p.add_argument("--overlap", type=int, default=2,
                   help="frames shared by consecutive windows and cross-faded (learned methods)")
    p.add_argument("--tile", type=int, default=None,
                   help="LR pixels per spatial tile, 0 for whole frames (default 512 for the learned methods, "
                        "384 for the detail model; memory grows with tile area x window; lowered automatically, "
                        "and said so, when the job would not fit the free memory)")
    p.add_argument("--stabilize", type=finite_float, default=0.0,
                   help="flow-guided temporal stabilisation strength 0..1 on top of the learned upscaler "
                        "(0: off; 0.6 lowers the warping error further at a small speed cost)")
    p.add_argument("--clean", default="auto",
                   help="how hard the learned upscaler cleans noise and compression: auto (read from the "
                        "clip's first frames, logged) or 0 (keep everything in the input as detail: grain, skin, "
                        "foliage) to 1 (clean hardest)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for the learned upscaler (0: the cores other processes leave free, measured at "
                        "start, at least 1; on a busy 2-core machine 1 thread was 2.3x faster than 2)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="the network's precision (auto: bf16 where a one-time measurement on this CPU found it "
                        "faster, cached in ~/.cache/vsr; env VSR_PRECISION=fp32|bf16 sets what auto means)")
    add_cache_arguments(p)
    add_worker_arguments(p, "windows")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    add_load_arguments(p)
    p.set_defaults(func=run)


def add_worker_arguments(parser, unit: str) -> None:
    parser.add_argument("--workers", type=int, default=0,
                        help=f"run the {unit} on N Ray workers, --threads each (optional: pip install "
                             f"\"ray[default]\"); the frames are the same for any N")
    parser.add_argument("--ray-address", default=None,
                        help="join an existing Ray cluster (e.g. auto, or HOST:6379); default: start a local one")


def add_cache_arguments(parser) -> None:
    parser.add_argument("--cache-dir", default=None,
                        help="where finished windows are kept until OUTPUT is complete, so running the same "
                             "command again after a cancel or crash resumes (default: a hidden folder beside OUTPUT)")
    parser.add_argument("--keep-cache", action="store_true", help="keep the cache after success")
    parser.add_argument("--chunk-frames", type=int, default=None,
                        help="frames per cached chunk, encoded like the output: a cancel loses at most one "
                             "chunk; longer chunks compress better (default: 48 for upscale, at most a quarter "
                             "of a short clip; 1 segment for restore)")


def input_and_output(args) -> tuple[str, str]:
    """INPUT OUTPUT, or with --example the shipped clip and the one path given."""
    if args.example:
        if args.input is None or args.output is not None:
            raise InputError("--example takes exactly one path, the output (e.g. `vsr upscale --example "
                             "out.mp4`); the input is the shipped clip")
        from ..samples import example_clip
        return example_clip(), args.input
    if args.output is None:
        raise InputError("expected INPUT and OUTPUT (e.g. `vsr upscale in.mp4 out.mp4`), or `--example OUT.mp4` "
                         "to upscale the shipped sample clip")
    return args.input, args.output


def run(args) -> int:
    src, dst = input_and_output(args)
    reporter = TerminalReporter()
    # with Ray workers the driver only decodes, crossfades and encodes: one thread leaves the cores to them
    method = args.method or default_method()
    # the free cores are measured (0.2 s) only where the network runs: bicubic keeps torch's default
    set_threads(1 if args.workers else (args.threads or (free_cores() if method != "bicubic" else 0)))
    with output_folder(dst):
        count = upscale_file(src, dst, scale=args.scale, method=method, weights=args.weights,
                             overlap=args.overlap, stabilize=args.stabilize, tile_lr_px=args.tile,
                             options=load_options(args), fmt=args.format, crf=args.crf,
                             overwrite=args.overwrite, window=args.window, cache_dir=args.cache_dir,
                             keep_cache=args.keep_cache, chunk_frames=args.chunk_frames,
                             workers=args.workers, ray_address=args.ray_address, worker_threads=args.threads or 1,
                             reporter=reporter, detail=args.detail, keyframe_every=args.keyframe_every,
                             detail_strength=args.detail_strength, precision=args.precision, clean=args.clean)
    reporter.finish()
    print(f"wrote {count} frames to {dst}")
    return 0
