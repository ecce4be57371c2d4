"""`python -m vsr_core upscale INPUT OUTPUT`: the main job."""
from __future__ import annotations

from ..errors import InputError
from ..jobs.job_settings import JobSettings
from ..jobs.upscale import upscale_file
from ..machine import free_cores, set_threads
from ..pipeline.upscale import default_method
from ..pipeline.upscale_settings import UpscaleSettings
from ..progress import TerminalReporter
from .options import add_settings, from_args
from .paths import output_folder


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
    add_settings(p, UpscaleSettings())
    add_settings(p, JobSettings())
    p.set_defaults(func=run)


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
    settings, job = from_args(UpscaleSettings(), args), from_args(JobSettings(), args)
    reporter = TerminalReporter()
    method = settings.method or default_method()
    # with Ray workers the driver only decodes, crossfades and encodes: one thread leaves the cores to them;
    # the free cores are measured (0.2 s) only where the network runs: bicubic keeps torch's default
    set_threads(1 if job.workers else (job.threads or (free_cores() if method != "bicubic" else 0)))
    with output_folder(dst):
        count = upscale_file(src, dst, settings, job, reporter=reporter)
    reporter.finish()
    print(f"wrote {count} frames to {dst}")
    return 0
