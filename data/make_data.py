#!/usr/bin/env python3
"""Rebuild ppreg's bundled real test images in data/ from their original packages.

The originals are fetched with the ordinary package clients into a cache directory
(default /tmp/ppreg-data-src, see --src-dir) and every derived file in data/ is rebuilt
deterministically from them:

  nilearn==0.14.1 (PyPI wheel)          -> mni_t1_2mm.nii.gz, mni_gm_2mm.nii.gz,
                                           mni_wm_2mm.nii.gz, mni_mask_2mm.nii.gz
  antspyx==0.6.3 (PyPI sdist)           -> r16.png, r27.png, r30.png, r62.png, r64.png,
                                           r85.png, r16_mask.png
  insighttoolkit5-examples (Debian deb) -> brain_t1_slice.png, brain_pd_slice.png,
                                           brain_t1_slice_mask.png

plus SHA256SUMS (checksums of all of the above). See data/README.md for provenance,
licences and the exact derivation; that file documents what this script does.

Usage (from the repo root, with the project venv):
    .venv/bin/python data/make_data.py [--src-dir DIR] [--out-dir DIR] [--no-download]

Needs numpy, scipy, SimpleITK and nibabel; `pip` (run as `sys.executable -m pip`),
and, for the Debian package, `apt-get` and `dpkg` (run as root; `apt-get update` is
run once if the first `apt-get download` fails).

Derived test cases (known transforms, noise, ...) are NOT stored here: tests generate
them in code from these images with a fixed seed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import scipy
import scipy.ndimage as ndi
import SimpleITK as sitk

# --------------------------------------------------------------------------------------
# Sources (pinned) and the checksums of the original files that the outputs derive from.
# --------------------------------------------------------------------------------------

NILEARN_VERSION = "0.14.1"
ANTSPYX_VERSION = "0.6.3"
ITK_DEB_PACKAGE = "insighttoolkit5-examples"

NILEARN_DATA = "nilearn/datasets/data/"
NILEARN_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
NILEARN_LICENSE = f"nilearn-{NILEARN_VERSION}.dist-info/licenses/LICENSE"

ANTS_SLICES = ("r16", "r27", "r30", "r62", "r64", "r85")  # antspyx-0.6.3/data/rNNslice.jpg

ITK_DATA_DIR = "usr/share/doc/insighttoolkit5-examples/examples/Data"
ITK_FILES = {"t1": "BrainT1Slice.png", "pd": "BrainProtonDensitySlice.png"}

# SHA-256 of the original input files (as found inside the packages) that this script
# was written and checked against. A mismatch means the upstream file changed and the
# outputs will differ: the build stops unless --allow-source-change is given.
EXPECTED_INPUT_SHA256 = {
    NILEARN_FILES["t1"]: "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
    NILEARN_FILES["gm"]: "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed",
    NILEARN_FILES["wm"]: "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db",
    "r16slice.jpg": "f3f77d4118ccef62a378dc62de561e5d752eabe4247f14467ab43268778ddb0f",
    "r27slice.jpg": "58ea0334a62760ce2e003b2df60485e8cfcde097ea200f6cf4da38fb03aaf8a8",
    "r30slice.jpg": "674ea6502418c63eb460bb7c40ff6dec21a05513cbc7218fa80e13e176ec946a",
    "r62slice.jpg": "acec668caf244f17ba3d35b0ec36b03a8bc32eb8e51d44f970408a16f399dce8",
    "r64slice.jpg": "3971218c84734fa1e65ec4472cc8d5cd81eeaa2a904fa7e50c74e9fe07f59d59",
    "r85slice.jpg": "d7d396b89e83cb9db4e36627c36965c3aaf149387b38233ffccc5e88006d252d",
    ITK_FILES["t1"]: "43f5d1bdb8130c3327dd4496568aed8c4b5ac4229e1a7d04fad412d55fd1ca18",
    ITK_FILES["pd"]: "f23b1322c71248617341bb41b312c60c222eb65c5d06df9d1a093b96e45e1db9",
}

# Derivation parameters (documented in data/README.md).
TARGET_SPACING_MM = 2.0
# Anti-aliasing before 1 mm -> 2 mm subsampling: Gaussian with FWHM = sqrt(2^2 - 1^2) mm.
AA_SIGMA_MM = float(np.sqrt(TARGET_SPACING_MM**2 - 1.0) / (2.0 * np.sqrt(2.0 * np.log(2.0))))
CROP_MARGIN_VOXELS = 4
MNI_MASK_REL_THRESHOLD = 0.2  # same rule as nilearn.datasets.load_mni152_brain_mask
PROB_SCALE = 1.0 / 255.0  # GM/WM stored as uint8 0..255 with NIfTI scl_slope = 1/255

OUTPUTS = (
    "mni_t1_2mm.nii.gz",
    "mni_gm_2mm.nii.gz",
    "mni_wm_2mm.nii.gz",
    "mni_mask_2mm.nii.gz",
    *(f"{name}.png" for name in ANTS_SLICES),
    "r16_mask.png",
    "brain_t1_slice.png",
    "brain_pd_slice.png",
    "brain_t1_slice_mask.png",
)


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def log(msg: str = "") -> None:
    print(msg, flush=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(cmd: list[str], cwd: Path | None = None) -> None:
    log("  $ " + " ".join(cmd) + (f"   (in {cwd})" if cwd else ""))
    subprocess.run(cmd, cwd=cwd, check=True)


class SourceError(RuntimeError):
    pass


def check_input(name: str, data: bytes, allow_change: bool) -> None:
    digest = sha256_bytes(data)
    expected = EXPECTED_INPUT_SHA256.get(name)
    status = "ok" if digest == expected else "CHANGED"
    log(f"  input {name}: sha256 {digest} [{status}]")
    if digest != expected and not allow_change:
        raise SourceError(
            f"{name}: sha256 {digest} differs from the expected {expected}; "
            "the upstream file changed (re-run with --allow-source-change to build anyway "
            "and update EXPECTED_INPUT_SHA256 and data/README.md)"
        )


# --------------------------------------------------------------------------------------
# Fetching the original packages
# --------------------------------------------------------------------------------------


def fetch_pip(spec: str, dest: Path, pattern: str, extra: list[str], download: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(pattern))
    if not found:
        if not download:
            raise SourceError(f"{pattern} not in {dest} and --no-download given")
        run([sys.executable, "-m", "pip", "download", spec, "--no-deps", *extra, "-d", str(dest)])
        found = sorted(dest.glob(pattern))
    if len(found) != 1:
        raise SourceError(f"expected exactly one {pattern} in {dest}, found {found}")
    log(f"  package {found[0].name}: sha256 {sha256_file(found[0])}")
    return found[0]


def fetch_deb(package: str, dest: Path, download: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    pattern = f"{package}_*.deb"
    found = sorted(dest.glob(pattern))
    if not found:
        if not download:
            raise SourceError(f"{pattern} not in {dest} and --no-download given")
        # apt's sandbox user may not be able to write into dest; apt then downloads as
        # root and prints a harmless warning.
        try:
            run(["apt-get", "download", package], cwd=dest)
        except subprocess.CalledProcessError:
            log("  apt-get download failed; running apt-get update once and retrying")
            run(["apt-get", "update"])
            run(["apt-get", "download", package], cwd=dest)
        found = sorted(dest.glob(pattern))
    if not found:
        raise SourceError(f"no {pattern} in {dest}")
    deb = found[-1]
    if len(found) > 1:
        log(f"  note: several .deb files in {dest}, using {deb.name}")
    log(f"  package {deb.name}: sha256 {sha256_file(deb)}")
    root = dest / "root"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    run(["dpkg", "-x", str(deb), str(root)])
    return root


def read_from_deb_tree(root: Path, name: str) -> bytes:
    """The bytes of `name` (possibly gzipped as name.gz) in the extracted package."""
    preferred = root / ITK_DATA_DIR / name
    candidates = [preferred, preferred.with_name(name + ".gz")]
    candidates += sorted(root.rglob(name)) + sorted(root.rglob(name + ".gz"))
    for path in candidates:
        if path.is_file():
            if path != preferred:
                log(f"  note: {name} found at {path.relative_to(root)}")
            data = path.read_bytes()
            return gzip.decompress(data) if path.suffix == ".gz" else data
    raise SourceError(f"{name} not found under {root}")


# --------------------------------------------------------------------------------------
# Image I/O with byte-exact, reproducible output
# --------------------------------------------------------------------------------------


def sitk_read_bytes(data: bytes, suffix: str) -> sitk.Image:
    """Read an image file given as bytes (SimpleITK reads only from paths)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"image{suffix}"
        path.write_bytes(data)
        return sitk.ReadImage(str(path))


def to_gray_u8(img: sitk.Image, name: str) -> np.ndarray:
    """2D 8-bit grayscale array (rows, cols) from a scalar, RGB(A) or palette image."""
    arr = sitk.GetArrayFromImage(img)
    if img.GetNumberOfComponentsPerPixel() > 1:
        rgb = arr[..., :3]
        if all(np.array_equal(rgb[..., 0], rgb[..., c]) for c in (1, 2)):
            log(f"  {name}: {img.GetNumberOfComponentsPerPixel()} channels, all equal -> gray")
            arr = rgb[..., 0]
        else:
            log(f"  {name}: colour image -> gray by ITU-R 601 luma")
            arr = np.rint(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
    if arr.ndim != 2:
        raise SourceError(f"{name}: expected a 2D image, got array shape {arr.shape}")
    if arr.min() < 0 or arr.max() > 255:
        raise SourceError(f"{name}: values outside 0..255")
    return np.ascontiguousarray(arr.astype(np.uint8))


def png_gray8_bytes(arr: np.ndarray) -> bytes:
    """Encode a 2D uint8 array as an 8-bit grayscale PNG.

    Written here (not via libpng) so the bytes depend only on the pixels and zlib:
    no timestamps, no pHYs (readers then use 1 mm pixels), no text chunks. Each row
    uses the PNG filter (None/Sub/Up/Average/Paeth) with the smallest sum of absolute
    residuals, the usual heuristic.
    """
    if arr.dtype != np.uint8 or arr.ndim != 2:
        raise ValueError("png_gray8_bytes needs a 2D uint8 array")
    h, w = arr.shape
    cur = arr.astype(np.int16)
    up = np.vstack([np.zeros((1, w), np.int16), cur[:-1]])
    left = np.hstack([np.zeros((h, 1), np.int16), cur[:, :-1]])
    upleft = np.hstack([np.zeros((h, 1), np.int16), up[:, :-1]])
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    preds = [np.zeros_like(cur), left, up, (left + up) // 2, paeth]
    residuals = [((cur - pred) % 256).astype(np.uint8) for pred in preds]
    # signed cost: residual r counts as min(r, 256 - r)
    costs = np.stack([np.minimum(r, 256 - r.astype(np.int16)).sum(axis=1) for r in residuals])
    choice = np.argmin(costs, axis=0)  # first minimum on ties: deterministic
    raw = bytearray()
    for y in range(h):
        raw.append(int(choice[y]))
        raw += residuals[choice[y]][y].tobytes()

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + tag
            + payload
            + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit, grayscale, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + chunk(b"IEND", b"")
    )


def nifti_gz_bytes(
    img: sitk.Image, dtype: type, descrip: str, slope: float | None = None
) -> bytes:
    """Encode a 3D SimpleITK image (already holding the stored integer values) as .nii.gz.

    The ITK (LPS) geometry is converted to a NIfTI (RAS) affine, stored as both sform and
    qform with code 2 ("aligned to another file"), as in the nilearn originals. gzip is
    written with mtime 0 and no file name so the bytes are reproducible.
    """
    arr = sitk.GetArrayFromImage(img)  # (z, y, x)
    data = np.asarray(arr).transpose(2, 1, 0)  # NIfTI order (i, j, k) = (x, y, z)
    if not np.array_equal(data, np.rint(data)):
        raise ValueError("nifti_gz_bytes expects integer-valued data")
    info = np.iinfo(dtype)
    if data.min() < info.min or data.max() > info.max:
        raise ValueError(f"values out of range for {dtype}")
    spacing = np.array(img.GetSpacing())
    direction = np.array(img.GetDirection()).reshape(3, 3)
    origin = np.array(img.GetOrigin())
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ direction @ np.diag(spacing)
    affine[:3, 3] = lps_to_ras @ origin
    nimg = nib.Nifti1Image(np.ascontiguousarray(data.astype(dtype)), affine)
    nimg.set_sform(affine, code=2)
    nimg.set_qform(affine, code=2)
    hdr = nimg.header
    hdr.set_data_dtype(dtype)
    hdr.set_xyzt_units(xyz="mm")
    hdr["descrip"] = descrip.encode("ascii")[:79]
    if slope is not None:
        hdr.set_slope_inter(slope, 0.0)
    raw = nimg.to_bytes()
    return gzip.compress(raw, compresslevel=9, mtime=0)


# --------------------------------------------------------------------------------------
# Derivations
# --------------------------------------------------------------------------------------


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n == 0:
        raise RuntimeError("empty mask")
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def otsu_threshold_u8(arr: np.ndarray) -> int:
    """Otsu's threshold k on the 256-bin histogram: foreground is arr > k."""
    hist = np.bincount(arr.ravel(), minlength=256).astype(np.float64)
    p = hist / hist.sum()
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    between[~np.isfinite(between)] = -1.0
    return int(np.argmax(between))


def brain_mask_2d(arr: np.ndarray, skull_stripped: bool) -> tuple[np.ndarray, str]:
    """Binary brain mask of a 2D T1 slice (threshold + largest component + hole fill).

    Skull-stripped slices (ANTs r16 etc.): foreground = arr > Otsu/2 (half of Otsu so
    that dark sulcal CSF at the brain border stays in), largest 8-connected component,
    holes filled.
    Slices with skull and scalp (ITK BrainT1Slice): foreground = arr > Otsu; eroded by a
    disk of radius 3 px to cut thin bridges to the scalp, largest component, dilated back
    by the same disk and intersected with the foreground, largest component again, holes
    filled.
    """
    t = otsu_threshold_u8(arr)
    if skull_stripped:
        thr = t // 2
        fg = arr > thr
        mask = _largest8(fg)
        how = f"otsu={t}, threshold arr > {thr}, largest 8-component, fill holes"
    else:
        thr, r = t, 3
        fg = arr > thr
        core = _largest8(ndi.binary_erosion(fg, structure=disk(r)))
        mask = _largest8(ndi.binary_dilation(core, structure=disk(r)) & fg)
        how = (
            f"otsu={t}, threshold arr > {thr}, erode r={r}px, largest 8-component, "
            f"dilate r={r}px & threshold, largest 8-component, fill holes"
        )
    mask = ndi.binary_fill_holes(mask)
    return mask, how


def _largest8(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        raise RuntimeError("empty mask")
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing())
        and np.allclose(a.GetOrigin(), b.GetOrigin())
        and np.allclose(a.GetDirection(), b.GetDirection())
    )


def build_mni(wheel: Path, src_dir: Path, allow_change: bool) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        listed = sorted(n for n in names if n.startswith(NILEARN_DATA + "mni_icbm152"))
        log("  MNI files in the wheel: " + ", ".join(Path(n).name for n in listed))
        raw = {key: zf.read(NILEARN_DATA + fname) for key, fname in NILEARN_FILES.items()}
        # keep a copy of nilearn's licence next to the sources for reference
        if NILEARN_LICENSE in names:
            (src_dir / "nilearn-LICENSE.txt").write_bytes(zf.read(NILEARN_LICENSE))
    for key, fname in NILEARN_FILES.items():
        check_input(fname, raw[key], allow_change)
    imgs = {key: sitk_read_bytes(raw[key], ".nii.gz") for key in raw}
    t1 = imgs["t1"]
    for key in ("gm", "wm"):
        if not same_grid(t1, imgs[key]):
            raise SourceError(f"MNI {key} is not on the T1 grid")
    log(
        f"  original grid: size {t1.GetSize()}, spacing {t1.GetSpacing()}, "
        f"origin {t1.GetOrigin()}, direction {t1.GetDirection()}, "
        f"type {t1.GetPixelIDTypeAsString()}"
    )

    # Brain mask at 1 mm. The wheel has no brain mask (and no CSF map): use nilearn's own
    # rule (load_mni152_brain_mask: T1 / max(T1) > 0.2; the T1 is skull-stripped), then
    # keep the largest 6-connected component and fill holes (3D).
    t1_arr = sitk.GetArrayFromImage(t1).astype(np.float64)
    mask1 = t1_arr / t1_arr.max() > MNI_MASK_REL_THRESHOLD
    mask1 = ndi.binary_fill_holes(largest_component(mask1))
    mask1_img = sitk.GetImageFromArray(mask1.astype(np.uint8))
    mask1_img.CopyInformation(t1)
    log(f"  1 mm brain mask: {int(mask1.sum())} voxels")

    # 2 mm grid: same origin and direction (voxel 0 keeps its centre, so 2 mm voxel
    # centres coincide with every other 1 mm voxel centre: even MNI coordinates, the
    # MNI origin (0,0,0) is a voxel centre), covering the original field of view.
    size2 = [int((n - 1) // 2 + 1) for n in t1.GetSize()]
    spacing2 = (TARGET_SPACING_MM,) * 3

    def resample(img: sitk.Image, interp: int, smooth: bool, out_type: int) -> sitk.Image:
        if smooth:
            img = sitk.Cast(img, sitk.sitkFloat64)
            img = sitk.DiscreteGaussian(img, [AA_SIGMA_MM**2] * 3, 32, 0.001, True)
        return sitk.Resample(
            img, size2, sitk.Transform(), interp, t1.GetOrigin(), spacing2,
            t1.GetDirection(), 0.0, out_type,
        )

    t1_2 = resample(t1, sitk.sitkLinear, True, sitk.sitkFloat64)
    gm_2 = resample(imgs["gm"], sitk.sitkLinear, True, sitk.sitkFloat64)
    wm_2 = resample(imgs["wm"], sitk.sitkLinear, True, sitk.sitkFloat64)
    mask_2 = resample(mask1_img, sitk.sitkNearestNeighbor, False, sitk.sitkUInt8)

    # Crop to the mask's bounding box plus a margin (clipped to the image).
    m = sitk.GetArrayFromImage(mask_2).transpose(2, 1, 0)  # (x, y, z)
    idx = np.argwhere(m > 0)
    lo = np.maximum(idx.min(axis=0) - CROP_MARGIN_VOXELS, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + CROP_MARGIN_VOXELS, np.array(size2))
    log(f"  2 mm grid {tuple(size2)} cropped to x[{lo[0]}:{hi[0]}] y[{lo[1]}:{hi[1]}] z[{lo[2]}:{hi[2]}]")
    touching = [ax for ax in range(3) if idx.min(axis=0)[ax] - CROP_MARGIN_VOXELS < 0
                or idx.max(axis=0)[ax] + 1 + CROP_MARGIN_VOXELS > size2[ax]]
    if touching:
        log(f"  note: margin clipped by the original field of view on axes {touching}")

    def crop(img: sitk.Image) -> sitk.Image:
        return img[int(lo[0]) : int(hi[0]), int(lo[1]) : int(hi[1]), int(lo[2]) : int(hi[2])]

    def quantize(img: sitk.Image, scale: float, lo_v: int, hi_v: int) -> sitk.Image:
        a = np.clip(np.rint(sitk.GetArrayFromImage(img) * scale), lo_v, hi_v)
        q = sitk.GetImageFromArray(a)
        q.CopyInformation(img)
        return q

    src = f"nilearn {NILEARN_VERSION}"
    out["mni_t1_2mm.nii.gz"] = nifti_gz_bytes(
        quantize(crop(t1_2), 1.0, 0, 255), np.int16,
        f"ppreg: MNI152 2009a sym T1 (skull-stripped), 2 mm, from {src}",
    )
    out["mni_gm_2mm.nii.gz"] = nifti_gz_bytes(
        quantize(crop(gm_2), 1.0, 0, 255), np.uint8,
        f"ppreg: MNI152 2009a sym GM probability (x1/255), 2 mm, from {src}", PROB_SCALE,
    )
    out["mni_wm_2mm.nii.gz"] = nifti_gz_bytes(
        quantize(crop(wm_2), 1.0, 0, 255), np.uint8,
        f"ppreg: MNI152 2009a sym WM probability (x1/255), 2 mm, from {src}", PROB_SCALE,
    )
    out["mni_mask_2mm.nii.gz"] = nifti_gz_bytes(
        crop(mask_2), np.uint8,
        f"ppreg: MNI152 2009a sym brain mask (T1/max>0.2), 2 mm, from {src}",
    )
    return out


def build_ants(sdist: Path, allow_change: bool) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    prefix = f"antspyx-{ANTSPYX_VERSION}/data/"
    with tarfile.open(sdist, "r:gz") as tf:
        members = {m.name: m for m in tf.getmembers()}
        listed = sorted(n[len(prefix):] for n in members if n.startswith(prefix))
        log("  files in " + prefix + ": " + ", ".join(listed))
        for name in ANTS_SLICES:
            fname = f"{name}slice.jpg"
            fh = tf.extractfile(members[prefix + fname])
            assert fh is not None
            data = fh.read()
            check_input(fname, data, allow_change)
            arr = to_gray_u8(sitk_read_bytes(data, ".jpg"), fname)
            out[f"{name}.png"] = png_gray8_bytes(arr)
            if name == "r16":
                mask, how = brain_mask_2d(arr, skull_stripped=True)
                log(f"  r16 mask: {how}: {int(mask.sum())} px")
                out["r16_mask.png"] = png_gray8_bytes(mask.astype(np.uint8) * 255)
    return out


def build_itk(root: Path, allow_change: bool) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, fname in ITK_FILES.items():
        data = read_from_deb_tree(root, fname)
        check_input(fname, data, allow_change)
        img = sitk_read_bytes(data, ".png")
        arr = to_gray_u8(img, fname)
        out[f"brain_{key}_slice.png"] = png_gray8_bytes(arr)
        if key == "t1":
            mask, how = brain_mask_2d(arr, skull_stripped=False)
            log(f"  BrainT1Slice mask: {how}: {int(mask.sum())} px")
            out["brain_t1_slice_mask.png"] = png_gray8_bytes(mask.astype(np.uint8) * 255)
    return out


# --------------------------------------------------------------------------------------
# Sanity checks on the written files (read back with SimpleITK and nibabel)
# --------------------------------------------------------------------------------------


def normalized_mi(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    h, _, _ = np.histogram2d(a.ravel(), b.ravel(), bins=bins)
    p = h / h.sum()
    px, py = p.sum(1), p.sum(0)

    def ent(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    return (ent(px) + ent(py)) / ent(p.ravel())


def sanity_check(out_dir: Path, built: dict[str, bytes]) -> list[str]:
    problems: list[str] = []

    def need(cond: bool, msg: str) -> None:
        if not cond:
            problems.append(msg)
            log(f"  FAIL: {msg}")

    log("\nSanity check (files read back from disk)")
    imgs: dict[str, sitk.Image] = {}
    for name in OUTPUTS:
        path = out_dir / name
        need(path.read_bytes() == built[name], f"{name}: bytes on disk differ from the build")
        img = sitk.ReadImage(str(path))
        imgs[name] = img
        a = sitk.GetArrayFromImage(img)
        extra = ""
        if name.endswith(".nii.gz"):
            n = nib.load(str(path))
            stored = np.asanyarray(n.dataobj.get_unscaled()).transpose(2, 1, 0)
            need(np.allclose(n.get_fdata().transpose(2, 1, 0), a, atol=1e-6),
                 f"{name}: nibabel and SimpleITK disagree")
            extra = (f" stored {n.get_data_dtype()} [{stored.min()}, {stored.max()}]"
                     f" sform/qform code {int(n.header['sform_code'])}/{int(n.header['qform_code'])}")
        log(
            f"  {name:24s} size {str(img.GetSize()):16s} spacing "
            f"{tuple(round(s, 3) for s in img.GetSpacing())} {img.GetPixelIDTypeAsString()}"
            f" range [{a.min():.4g}, {a.max():.4g}]{extra}"
        )

    # 3D: shared grid, geometry, mask volume, content
    t1 = imgs["mni_t1_2mm.nii.gz"]
    for name in ("mni_gm_2mm.nii.gz", "mni_wm_2mm.nii.gz", "mni_mask_2mm.nii.gz"):
        need(same_grid(t1, imgs[name]), f"{name} not on the grid of mni_t1_2mm")
    need(np.allclose(t1.GetSpacing(), (2, 2, 2)), "MNI spacing is not 2 mm")
    need(np.allclose(t1.GetDirection(), (-1, 0, 0, 0, -1, 0, 0, 0, 1)),
         "MNI direction is not the original LPS diag(-1,-1,1)")
    # the MNI origin (0,0,0) must be a voxel centre of the 2 mm grid
    c = np.array(t1.TransformPhysicalPointToContinuousIndex((0.0, 0.0, 0.0)))
    need(np.allclose(c, np.rint(c), atol=1e-6), "MNI (0,0,0) is not a voxel centre")
    mask = sitk.GetArrayFromImage(imgs["mni_mask_2mm.nii.gz"])
    need(set(np.unique(mask).tolist()) <= {0, 1}, "MNI mask is not 0/1")
    nvox = int(mask.sum())
    log(f"  MNI mask: {nvox} voxels = {nvox * 8 / 1000:.0f} ml "
        f"({100 * nvox / mask.size:.1f}% of the cropped grid); (0,0,0) at index {tuple(int(v) for v in np.rint(c))}")
    need(1.2e6 < nvox * 8 < 2.2e6, "MNI brain mask volume implausible (expected 1.2-2.2 l)")
    gm = sitk.GetArrayFromImage(imgs["mni_gm_2mm.nii.gz"])
    wm = sitk.GetArrayFromImage(imgs["mni_wm_2mm.nii.gz"])
    need(0 <= gm.min() and gm.max() <= 1 and 0 <= wm.min() and wm.max() <= 1,
         "GM/WM probabilities outside [0, 1]")
    log(f"  GM volume {gm.sum() * 8 / 1000:.0f} ml, WM volume {wm.sum() * 8 / 1000:.0f} ml; "
        f"GM+WM>0.5 inside mask: {100 * ((gm + wm > 0.5) & (mask > 0)).sum() / max((gm + wm > 0.5).sum(), 1):.2f}%")
    t1a = sitk.GetArrayFromImage(t1)
    need(t1a[mask > 0].mean() > 4 * max(t1a[mask == 0].mean(), 1e-3),
         "T1 not brighter inside the mask than outside")

    # 2D pairs
    def size(name: str) -> tuple[int, ...]:
        return imgs[name].GetSize()

    log(f"  ITK T1/PD pair: {size('brain_t1_slice.png')} vs {size('brain_pd_slice.png')}")
    need(size("brain_t1_slice.png") == size("brain_pd_slice.png"), "T1/PD slices differ in size")
    log(f"  ANTs r16/r64: {size('r16.png')} vs {size('r64.png')}")
    need(size("r16.png") == size("r64.png"), "r16 and r64 differ in size")
    for name in OUTPUTS:
        if name.endswith(".png"):
            need(np.allclose(imgs[name].GetSpacing(), (1, 1)), f"{name}: spacing not 1")
    for img_name, mask_name in (("r16.png", "r16_mask.png"),
                                ("brain_t1_slice.png", "brain_t1_slice_mask.png")):
        need(size(img_name) == size(mask_name), f"{mask_name} size differs from {img_name}")
        mk = sitk.GetArrayFromImage(imgs[mask_name])
        need(set(np.unique(mk).tolist()) <= {0, 255}, f"{mask_name} not 0/255")
        frac = (mk > 0).mean()
        log(f"  {mask_name}: {int((mk > 0).sum())} px ({100 * frac:.1f}% of the image)")
        need(0.1 < frac < 0.8, f"{mask_name}: implausible area fraction {frac:.2f}")
    # the T1/PD pair is aligned: normalised MI over the brain box peaks at zero shift
    t1s = sitk.GetArrayFromImage(imgs["brain_t1_slice.png"]).astype(np.float64)
    pds = sitk.GetArrayFromImage(imgs["brain_pd_slice.png"]).astype(np.float64)
    b = 8
    scores = {
        (dy, dx): normalized_mi(t1s[b:-b, b:-b], np.roll(pds, (dy, dx), (0, 1))[b:-b, b:-b])
        for dy in range(-3, 4) for dx in range(-3, 4)
    }
    best = max(scores, key=scores.get)
    log(f"  T1/PD normalised MI: {scores[(0, 0)]:.4f} at zero shift, best shift {best}")
    need(best == (0, 0), "T1/PD pair does not look aligned")
    return problems


# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src-dir", type=Path, default=Path("/tmp/ppreg-data-src"),
                    help="cache for the downloaded packages (default %(default)s)")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent,
                    help="where to write the derived files (default: this script's folder)")
    ap.add_argument("--no-download", action="store_true",
                    help="use only what is already in --src-dir")
    ap.add_argument("--allow-source-change", action="store_true",
                    help="build even if an original file's sha256 differs from the expected")
    args = ap.parse_args(argv)

    src_dir: Path = args.src_dir.resolve()
    out_dir: Path = args.out_dir.resolve()
    src_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # no thread-dependent rounding

    log(f"ppreg data build: python {sys.version.split()[0]}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, SimpleITK {sitk.Version.VersionString()}, "
        f"nibabel {nib.__version__}, zlib {zlib.ZLIB_RUNTIME_VERSION}")
    log(f"sources in {src_dir}, outputs in {out_dir}")
    dl = not args.no_download
    allow = args.allow_source_change
    built: dict[str, bytes] = {}

    log(f"\n[1/3] nilearn {NILEARN_VERSION} wheel (PyPI)")
    wheel = fetch_pip(f"nilearn=={NILEARN_VERSION}", src_dir / "pip-nilearn",
                      f"nilearn-{NILEARN_VERSION}-*.whl", [], dl)
    built.update(build_mni(wheel, src_dir, allow))

    log(f"\n[2/3] antspyx {ANTSPYX_VERSION} sdist (PyPI)")
    sdist = fetch_pip(f"antspyx=={ANTSPYX_VERSION}", src_dir / "pip-antspyx",
                      f"antspyx-{ANTSPYX_VERSION}.tar.gz", ["--no-binary", ":all:"], dl)
    built.update(build_ants(sdist, allow))

    log(f"\n[3/3] {ITK_DEB_PACKAGE} (Debian)")
    root = fetch_deb(ITK_DEB_PACKAGE, src_dir / "deb-itk", dl)
    built.update(build_itk(root, allow))

    assert set(built) == set(OUTPUTS), sorted(set(built) ^ set(OUTPUTS))

    sums_path = out_dir / "SHA256SUMS"
    previous: dict[str, str] = {}
    if sums_path.exists():
        for line in sums_path.read_text().splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                previous[name.lstrip("*")] = digest

    log("\nWrote")
    total = 0
    lines = []
    for name in OUTPUTS:
        data = built[name]
        (out_dir / name).write_bytes(data)
        digest = sha256_bytes(data)
        lines.append(f"{digest}  {name}\n")
        total += len(data)
        log(f"  {name:24s} {len(data):9d} bytes  sha256 {digest}")
    sums_path.write_text("".join(lines))
    log(f"  {'SHA256SUMS':24s} {sums_path.stat().st_size:9d} bytes")
    log(f"  total of the images: {total} bytes ({total / 2**20:.2f} MiB)")

    if previous:
        changed = [n for n in OUTPUTS if previous.get(n) != sha256_bytes(built[n])]
        if changed:
            log("  differs from the previous SHA256SUMS: " + ", ".join(changed))
        else:
            log("  identical to the previous SHA256SUMS (byte-for-byte reproducible)")

    problems = sanity_check(out_dir, built)
    if problems:
        log(f"\n{len(problems)} sanity check(s) failed")
        return 1
    log("\nall sanity checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
