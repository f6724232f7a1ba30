Composing a sweep reads and merges each config once per launch instead of once per job, still through Hydra's own composition (same configs, hydra.* values and errors).
