"""The meta-learner and the INRs it writes: configs and presets, tokenizers, Transformer,
hypernetwork, INR functions, image rendering, anti-aliasing and the baselines.

Nothing is imported here: importing a module of this package loads only what it needs.
"""
