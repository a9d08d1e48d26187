"""Tasks: what a run learns (classification, regression, segmentation, gan); see registry.py."""
