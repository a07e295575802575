"""View synthesis geometry: cameras and rays, volume rendering of NeRF INRs.

Nothing is imported here: importing a module of this package loads only what it needs.
"""
