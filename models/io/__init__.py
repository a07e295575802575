"""Files: safetensors, the `.inr` format and its header, checkpoints, bundled models, images
and the posed-view files, all read strictly.

Nothing is imported here: importing a module of this package loads only what it needs.
"""
