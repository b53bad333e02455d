"""A scene to super-resolve, and the maps written from it.

GeoTIFF goes through rasterio, so the CRS, the transform, nodata and the band descriptions survive;
``.npy``, ``.png`` and plain TIFF are read as ``data.folder.read_image`` reads them. A map of an
image s times finer keeps the CRS and the origin, its pixel size divided by s. Every file is written
under a temporary name in its own folder and renamed when complete, so a failure leaves no
half-written output.
"""

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from data.errors import DataError, one_line
from data.folder import read_image

GEOTIFF = (".tif", ".tiff")
READABLE = (*GEOTIFF, ".npy", ".png")


@dataclass(frozen=True)
class Raster:
    """An image (C, H, W) in its own units and dtype, which of its pixels hold data (``valid``, (H, W):
    every band finite and none at ``nodata``), and its georeferencing when it has one."""

    values: np.ndarray
    valid: np.ndarray
    nodata: float | None = None
    crs: object | None = None
    transform: object | None = None
    descriptions: tuple = ()
    scales: tuple = ()  # a GeoTIFF's stated map to physical values, v · scale + offset per band
    offsets: tuple = ()

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None


def read_raster(path: Path, nodata: float | None = None) -> Raster:
    """The image at ``path``; ``nodata`` marks missing pixels where the file states no nodata value of
    its own. A missing or unreadable file, or one that is not an image, is a ``DataError``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give an image ({', '.join(READABLE)})")
    if path.suffix.lower() not in READABLE:
        raise DataError(f"{path}: not an image this program reads; give {', '.join(READABLE)}")
    geotiff = path.suffix.lower() in GEOTIFF
    raster = read_geotiff(path) if geotiff else Raster(read_image(path), np.ones(0, dtype=bool))
    if raster.values.ndim != 3:
        raise DataError(f"{path}: a {raster.values.ndim}-D array; give an image H × W or bands × H × W")
    if not np.issubdtype(raster.values.dtype, np.number) or np.issubdtype(raster.values.dtype, np.complexfloating):
        raise DataError(f"{path}: pixels of type {raster.values.dtype}; give integer or floating-point pixels")
    nodata = raster.nodata if raster.nodata is not None else nodata
    valid = np.isfinite(raster.values).all(0)
    if nodata is not None and not np.isnan(nodata):
        valid &= (raster.values != nodata).all(0)
    if raster.valid.size:
        valid &= raster.valid
    return replace(raster, valid=valid, nodata=nodata)


def read_geotiff(path: Path) -> Raster:
    """A (Geo)TIFF through rasterio: its bands, the pixels its masks mark as data, its georeferencing."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as source:
                values = source.read()
                valid = (source.read_masks() > 0).all(0)
                crs = source.crs
                transform = source.transform if crs is not None or not source.transform.is_identity else None
                return Raster(values, valid, source.nodata, crs, transform, tuple(source.descriptions),
                              tuple(source.scales), tuple(source.offsets))
    except rasterio.errors.RasterioError as error:
        raise DataError(f"{path}: cannot read it as an image ({one_line(error)}); replace the file") from None


def partial_path(path: Path) -> Path:
    """Where a file is written until it is whole: a hidden name beside it, with the same suffix."""
    return path.with_name(f".{path.name}.partial{path.suffix}")


def finer_transform(transform, scale: int):
    """The transform of a grid s times finer over the same area: same origin, pixel size divided by s."""
    from affine import Affine

    return transform @ Affine.scale(1 / scale)


class MapWriter:
    """One output map (…, H, W) of float32, written in strips of rows (``write``), as a GeoTIFF
    georeferenced like ``like`` at ``scale`` times its resolution when ``path`` ends in .tif (its
    bands the leading axes flattened, NaN its nodata), else as ``.npy``; under a temporary name until
    ``commit`` renames it (``discard`` removes it)."""

    def __init__(self, path: Path, shape: tuple, like: Raster | None = None, scale: int = 1,
                 descriptions: tuple = ()):
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.geotiff = self.path.suffix.lower() in GEOTIFF
        if self.geotiff:
            import rasterio

            georeferenced = like is not None and like.georeferenced
            profile = {"driver": "GTiff", "dtype": "float32", "count": int(np.prod(shape[:-2])),
                       "height": shape[-2], "width": shape[-1], "compress": "deflate", "nodata": np.nan,
                       "crs": like.crs if georeferenced else None,
                       "transform": finer_transform(like.transform, scale) if georeferenced else None}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self.file = rasterio.open(self.partial, "w", **profile)
            for band, text in enumerate(descriptions, start=1):
                if text:
                    self.file.set_band_description(band, text)
        else:
            self.file = np.lib.format.open_memmap(self.partial, mode="w+", dtype=np.float32, shape=shape)

    def write(self, strip: np.ndarray, row: int) -> None:
        """Rows ``row`` … of every band: ``strip`` (…, rows, W), its leading axes the file's bands
        (a GeoTIFF's bands are their flattening)."""
        rows, width = strip.shape[-2:]
        if self.geotiff:
            from rasterio.windows import Window

            self.file.write(strip.reshape(-1, rows, width).astype(np.float32), window=Window(0, row, width, rows))
        else:
            self.file[..., row:row + rows, :] = strip

    def close(self) -> None:
        if self.file is None:
            return
        if self.geotiff:
            self.file.close()
        else:
            self.file.flush()
        self.file = None

    def commit(self) -> None:
        self.close()
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        try:
            self.close()
        finally:
            self.partial.unlink(missing_ok=True)
