"""transinr core: Transformers as meta-learners for implicit neural representations.

Sub-packages follow the data flow of the paper (Chen & Wang, ECCV 2022):
- core: tokenizers -> transformer -> hypernetwork (weight grouping) -> INRs -> image rendering,
  the meta-learner and its baselines, model configs and the named presets;
- nerf: cameras, rays and volume rendering of NeRF INRs;
- io: the `.inr` file format, checkpoints, bundled models, images and posed-view files;
- data: data sets of images and posed views, synthetic objects, meshes;
- tasks: training, encoding, refinement, fitting, evaluation, attention maps and export.
`api` is the public Python API; `errors` holds TransInrError. Sub-packages import nothing
eagerly.
"""

__version__ = "0.1.0"
