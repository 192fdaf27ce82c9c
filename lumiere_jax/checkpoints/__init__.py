"""Checkpoint I/O above the models: exported weights (Orbax + config.json), the pretrained parts
a model is initialised from, and the weights shipped in the package."""
