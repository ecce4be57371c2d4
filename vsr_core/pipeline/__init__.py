"""Stages that combine models, samplers and flow over whole videos."""
