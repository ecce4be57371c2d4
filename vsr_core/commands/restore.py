"""`python -m vsr_core restore INPUT OUTPUT`: the full diffusion graph, streamed, resumable."""
from __future__ import annotations

from ..diffusion.motion_guidance import MotionGuidance
from ..jobs.restore import restore_file
from ..machine import set_threads
from ..numbers import finite_float
from ..diffusion.sampler_options import parse_assignments
from ..diffusion.samplers import SAMPLERS, describe_samplers
from ..pipeline.guided_sample import SampleSettings
from ..pipeline.restore_video import SEAM_MODES, RestoreSettings, load_restore_models
from ..progress import TerminalReporter
from ..speed import DEVICES, PRECISIONS
from ..video import FORMATS
from .paths import output_folder
from .upscale import add_cache_arguments, add_load_arguments, add_worker_arguments, load_options


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "restore", help="the full diffusion graph over a video (upscale, guided sampling, temporal decode, refine)",
        description="Restore INPUT into OUTPUT with the whole graph of workflows/full_pipeline_default "
                    "(shipped weights unless checkpoints are given), streamed in segments so memory does not "
                    "grow with the video's length. Finished segments are cached: run the same command again "
                    "after a cancel or crash and it resumes.")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--scale", type=int, default=4, choices=(2, 4))
    p.add_argument("--diffusion-model", default=None,
                   help="diffusion checkpoint (SD 2.x / StableSR / MGLD-VSR; default: the shipped tiny UNet)")
    p.add_argument("--vae", default=None, help="VAE file (default: the shipped tiny video VAE, or the "
                                               "diffusion checkpoint's own VAE when one is given)")
    p.add_argument("--sampler", default="ddpm", choices=list(SAMPLERS), help=describe_samplers("; "))
    p.add_argument("--sampler-option", dest="sampler_options", action="append", default=[], metavar="NAME=VALUE",
                   help="a keyword option of the sampler (repeatable), e.g. --sampler ddim --sampler-option eta=0.5; "
                        "each sampler's options and defaults are listed under --sampler")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", type=finite_float, default=10.0, help="motion guidance scale (0: off)")
    p.add_argument("--window", type=int, default=5, help="frames sampled together")
    p.add_argument("--tile", type=int, default=64, help="latent tile for sampling, VAE encode and decode")
    p.add_argument("--upscale-tile", type=int, default=128, help="LR pixels per tile of the upscaler")
    p.add_argument("--segment", type=int, default=16,
                   help="frames per segment; memory grows with it, not with the video's length")
    p.add_argument("--segment-overlap", type=int, default=2, help="frames shared by neighbouring segments")
    p.add_argument("--seams", default=None, choices=SEAM_MODES,
                   help="carried: guidance carried from segment to segment (one process, the default); "
                        "independent: each segment sampled alone (the mode of --workers, for any N)")
    add_cache_arguments(p)
    add_worker_arguments(p, "segments")
    p.add_argument("--format", default=None, choices=FORMATS)
    p.add_argument("--crf", type=int, default=18, help="h264 quality, 0 (lossless) to 51")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="where the networks run (auto: CUDA if any)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="autocast precision (auto: fp16/bf16 on CUDA, bf16 on CPUs with AMX/AVX512-BF16, else fp32)")
    p.add_argument("--channels-last", action="store_true",
                   help="NHWC convolution weights (faster VAE on this project's test CPU; see README)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the UNet (about a minute of compiling per shape; no gain measured on a CPU)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    add_load_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..jobs.file_job import check_job_paths
    from ..video.writer import validate_output
    check_job_paths(args.input, args.output, args.cache_dir)         # before minutes of model loading
    validate_output(args.output, args.format, args.crf, args.overwrite)
    seams = args.seams or ("independent" if args.workers else "carried")
    # with Ray workers the driver only decodes, crossfades and encodes: one thread leaves the cores to them
    set_threads(1 if args.workers else args.threads)
    sample = SampleSettings(steps=args.steps, sampler=args.sampler, options=parse_assignments(args.sampler_options),
                            seed=args.seed, window=args.window,
                            tile_latent=args.tile, tile_overlap_latent=args.tile // 2,
                            guidance=MotionGuidance(args.guidance))
    settings = RestoreSettings(scale=args.scale, segment=args.segment, segment_overlap=args.segment_overlap,
                               sample=sample, precision=args.precision, upscale_tile_lr_px=args.upscale_tile,
                               encode_tile_latent=args.tile, decode_tile_latent=args.tile,
                               decode_tile_overlap_latent=min(16, args.tile // 4), seams=seams)
    load = dict(diffusion=args.diffusion_model, vae=args.vae, device=args.device,
                channels_last=args.channels_last, compile=args.compile)
    models = None if args.workers else load_restore_models(args.scale, **load)   # workers load their own
    reporter = TerminalReporter()
    with output_folder(args.output):
        count = restore_file(args.input, args.output, settings, models, options=load_options(args), fmt=args.format,
                             crf=args.crf, overwrite=args.overwrite, cache_dir=args.cache_dir,
                             keep_cache=args.keep_cache, chunk_frames=args.chunk_frames or 1,
                             workers=args.workers, ray_address=args.ray_address, worker_threads=args.threads or 1,
                             worker_models=load, reporter=reporter)
    reporter.finish()
    print(f"wrote {count} frames to {args.output}")
    return 0
