"""`python -m vsr_core restore INPUT OUTPUT`: the full diffusion graph, streamed, resumable."""
from __future__ import annotations

from ..checkpoints.restore_models import RestoreModelSettings
from ..jobs.job_settings import JobSettings
from ..jobs.restore import restore_file
from ..machine import set_threads
from ..pipeline.restore_video import RestoreSettings
from ..progress import TerminalReporter
from .options import add_settings, from_args
from .paths import output_folder


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "restore", help="the full diffusion graph over a video (upscale, guided sampling, temporal decode, refine)",
        description="Restore INPUT into OUTPUT with the whole graph of workflows/full_pipeline_default "
                    "(shipped weights unless checkpoints are given), streamed in segments so memory does not "
                    "grow with the video's length. Finished segments are cached: run the same command again "
                    "after a cancel or crash and it resumes.")
    p.add_argument("input")
    p.add_argument("output")
    add_settings(p, RestoreSettings())
    add_settings(p, RestoreModelSettings())
    add_settings(p, JobSettings())
    p.set_defaults(func=run)


def run(args) -> int:
    settings, job = from_args(RestoreSettings(), args), from_args(JobSettings(), args)
    # with Ray workers the driver only decodes, crossfades and encodes: one thread leaves the cores to them
    set_threads(1 if job.workers else job.threads)
    reporter = TerminalReporter()
    with output_folder(args.output):
        count = restore_file(args.input, args.output, settings, job, model_files=from_args(RestoreModelSettings(),
                                                                                           args),
                             reporter=reporter)
    reporter.finish()
    print(f"wrote {count} frames to {args.output}")
    return 0
