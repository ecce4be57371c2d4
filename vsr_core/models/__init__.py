"""Network architectures: one module per architecture (UNet, VAE, encoders).

Modules here build networks only; reading files and detecting checkpoint
formats lives in vsr_core.checkpoints.
"""
