"""mdlm-bio: masked diffusion language models for DNA and text."""

__version__ = "0.1.0"
