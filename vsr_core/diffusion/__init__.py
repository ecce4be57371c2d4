"""Diffusion samplers and schedules as pure functions (k-diffusion's sampling.py style)."""
from .noise import FrameNoise
from .prediction import PREDICTIONS, to_x0_eps
from .blur_resshift import BlurResShift
from .motion_guidance import MotionGuidance
from .resshift import ResShiftSchedule, resshift_schedule, sample_resshift, sample_resshift_from
from .samplers import SAMPLERS, find_sampler, sample_ddim, sample_ddpm
from .schedules import DDPMSchedule, ddpm_schedule, q_sample, scaled_linear_betas, space_timesteps

__all__ = ["FrameNoise", "PREDICTIONS", "to_x0_eps", "BlurResShift", "MotionGuidance", "ResShiftSchedule",
           "resshift_schedule", "sample_resshift", "sample_resshift_from",
           "SAMPLERS", "find_sampler", "sample_ddim", "sample_ddpm", "DDPMSchedule", "ddpm_schedule", "q_sample",
           "scaled_linear_betas", "space_timesteps"]
