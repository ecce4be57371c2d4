"""Diffusion samplers and schedules as pure functions (k-diffusion's sampling.py style)."""
from .noise import FrameNoise
from .prediction import PREDICTIONS, to_x0_eps
from .resshift import ResShiftSchedule, resshift_schedule, sample_resshift
from .samplers import SAMPLERS, sample_ddim, sample_ddpm
from .schedules import DDPMSchedule, ddpm_schedule, q_sample, scaled_linear_betas, space_timesteps

__all__ = ["FrameNoise", "PREDICTIONS", "to_x0_eps", "ResShiftSchedule", "resshift_schedule", "sample_resshift",
           "SAMPLERS", "sample_ddim", "sample_ddpm", "DDPMSchedule", "ddpm_schedule", "q_sample",
           "scaled_linear_betas", "space_timesteps"]
