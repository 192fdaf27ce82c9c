"""Lumiere's applications of the same models (paper section 4): image-to-video, inpainting and
cinemagraphs (the conditional STUNet's <C, M> inputs), stylized generation (spatial weights
interpolated with a style fine-tuned T2I) and video stylization (SDEdit)."""
