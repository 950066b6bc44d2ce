"""The pixel layer: clip I/O, crop, frame selection, masks, inpainting, PNG, the per-clip pipeline and automatic
crop and masks. Knows no HTTP, no `datasets`, no download cache.
"""
