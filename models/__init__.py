"""transinr core: Transformers as meta-learners for implicit neural representations.

Modules follow the data flow of the paper (Chen & Wang, ECCV 2022):
tokenizers -> transformer -> hypernetwork (weight grouping) -> INRs -> rendering,
plus the `.inr` file format, checkpoints, data, training, refinement and evaluation.
"""

__version__ = "0.1.0"
