"""`python -m mdlm_bio.cli` is `mdlm-bio`."""

from . import main

main()
