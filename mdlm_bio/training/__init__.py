"""Training: the Lightning module (engine + backbone + EMA + optimiser), data modules, callbacks."""
