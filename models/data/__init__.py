"""Data sets: image folders, posed views, synthetic objects and meshes rendered to views.

Nothing is imported here: importing a module of this package loads only what it needs.
"""
