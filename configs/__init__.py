"""YAML presets (data, not code), shipped inside the installed package as mdlm_bio.configs."""
