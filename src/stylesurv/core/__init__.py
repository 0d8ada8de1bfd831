"""The lowest layer: errors, console, run folders and their locks, atomic writes, hashes, and the on-disk
contracts every stage shares (latents, aligned folder, patient ids)."""

__all__ = [
    "aligned",
    "atomic",
    "config",
    "console",
    "csvcells",
    "errors",
    "geometry",
    "hashing",
    "ids",
    "latents",
    "lock",
    "rundir",
    "workers",
]
