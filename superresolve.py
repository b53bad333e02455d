"""SRVAE-Pyro: apply a trained model to an LR image of any size, tile by tile, and write in the model's data
units (the image's own, unless --scale/--offset or the GeoTIFF's stated scale and offset map it there) the SR
mean, its per-pixel std, the 5 % and 95 % quantiles (and on request whole-scene samples), with a quicklook.
A GeoTIFF gives GeoTIFFs with the same CRS, the pixel size divided by the scale, and the band names; other
inputs give .npy.

    python superresolve.py sentinel2-rgbn scene.tif --out scene-sr        (the bundled Sentinel-2 model)
    python superresolve.py runs/malmo/checkpoint.pt scene.tif --out scene-sr

Exit status: 0 done; 2 bad input (one line on stderr, nothing written); 130 or 143 stopped by Ctrl-C or
SIGTERM (nothing written).
"""

import sys

from experiment.scene import superresolve

if __name__ == "__main__":
    sys.exit(superresolve(None, __doc__))
