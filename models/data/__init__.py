"""Data sets: images, posed views, synthetic objects and meshes rendered to views, and the loaders
that feed them to a loop.

Nothing is imported here: importing a module of this package loads only what it needs.
"""
