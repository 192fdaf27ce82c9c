"""Device meshes, weight and batch shardings, multi-host set-up."""
