"""What the commands do: training, encoding, refinement, fitting, evaluation, attention maps
and export.

Nothing is imported here: importing a module of this package loads only what it needs.
"""
