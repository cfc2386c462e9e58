"""Reading and writing images and transforms: values, physical space, typed errors."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import DATA_DIR, OBLIQUE_DIRECTION
from ppreg.errors import InputError
from ppreg.io.images import Grid, Image, read_image, warped_output_path, write_image
from ppreg.io.transforms import (
    linear_to_sitk,
    mapped_points,
    read_linear_transform,
    read_transform,
    write_transform,
)
from ppreg.synthetic import known_affine


def oblique_image(dim: int, seed: int = 0) -> Image:
    rng = np.random.default_rng(seed)
    size = (7, 6, 5)[:dim]
    grid = Grid(size=size, spacing=np.array([0.7, 1.2, 2.5][:dim]), origin=np.array([3.0, -4.0, 5.5][:dim]),
                direction=OBLIQUE_DIRECTION if dim == 3 else np.array([[0.0, -1.0], [1.0, 0.0]]))
    return Image(array=rng.normal(size=grid.shape).round(3), grid=grid)


def write_sitk(array: np.ndarray, path, vector: bool = False) -> str:
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=vector), str(path))
    return str(path)


# --- images ---------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha"])
@pytest.mark.parametrize("dim", [2, 3])
def test_round_trip_keeps_values_and_physical_space(tmp_path, suffix, dim):
    image = oblique_image(dim)
    back = read_image(write_image(image, tmp_path / f"image{suffix}"))
    assert back.grid.size == image.grid.size
    np.testing.assert_allclose(back.array, image.array, atol=1e-6)  # float32 on disk
    np.testing.assert_allclose(back.grid.spacing, image.grid.spacing, atol=1e-6)
    np.testing.assert_allclose(back.grid.origin, image.grid.origin, atol=1e-5)
    np.testing.assert_allclose(back.grid.direction, image.grid.direction, atol=1e-6)


def test_png_round_trip_keeps_uint8_values_on_a_unit_grid(tmp_path):
    values = np.random.default_rng(1).integers(0, 256, size=(20, 30)).astype(np.float64)
    image = Image(values, Grid((30, 20), np.ones(2), np.zeros(2), np.eye(2)))
    back = read_image(write_image(image, tmp_path / "slice.png"))
    np.testing.assert_array_equal(back.array, values)
    assert back.grid.size == (30, 20)


def test_bundled_images_have_the_documented_geometry():
    mni = read_image(DATA_DIR / "mni_t1_2mm.nii.gz")
    assert mni.grid.size == (81, 98, 82)
    np.testing.assert_allclose(mni.grid.spacing, 2.0)
    np.testing.assert_allclose(np.abs(np.diag(mni.grid.direction)), 1.0)
    r16 = read_image(DATA_DIR / "r16.png")
    assert r16.grid.size == (256, 256) and r16.array.max() <= 255
    np.testing.assert_array_equal(r16.grid.spacing, [1.0, 1.0])
    np.testing.assert_array_equal(r16.grid.origin, [0.0, 0.0])


def test_rgb_png_is_read_as_luminance(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, size=(20, 30, 3)).astype(np.uint8)
    image = read_image(write_sitk(rgb, tmp_path / "colour.png", vector=True))
    assert image.dim == 2 and image.array.shape == (20, 30)
    np.testing.assert_allclose(image.array, rgb @ np.array([0.299, 0.587, 0.114]), atol=1e-9)


def test_single_slice_volume_is_read_as_2d(tmp_path):
    image = read_image(write_sitk(np.arange(60.0).reshape(1, 6, 10), tmp_path / "slab.nii.gz"))
    assert image.dim == 2 and image.grid.size == (10, 6)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_nan_image_is_an_input_error(tmp_path, suffix):
    values = np.ones((5, 6, 7))
    values[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        read_image(write_sitk(values, tmp_path / f"nan{suffix}"))


def test_nan_nifti_is_an_input_error(tmp_path):
    values = np.ones((5, 6, 7))
    values[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        read_image(write_sitk(values, tmp_path / "nan.nii.gz"))


def test_infinite_value_is_an_input_error(tmp_path):
    values = np.ones((6, 7))
    values[0, 0] = np.inf
    with pytest.raises(InputError):
        read_image(write_sitk(values, tmp_path / "inf.mha"))


def truncated_copy(tmp_path, name: str) -> str:
    raw = (DATA_DIR / name).read_bytes()
    path = tmp_path / f"truncated_{name}"
    path.write_bytes(raw[: len(raw) // 2])
    return str(path)


@pytest.mark.parametrize("name,content", [
    ("garbage.png", b"not an image at all" * 10),
    ("garbage.nii.gz", bytes(np.random.default_rng(3).integers(0, 256, 1000, dtype=np.uint8))),
    ("empty.mha", b""),
])
def test_corrupt_file_is_an_input_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match="cannot read"):
        read_image(path)


def test_truncated_png_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        read_image(truncated_copy(tmp_path, "r16.png"))


def test_truncated_nifti_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        read_image(truncated_copy(tmp_path, "mni_t1_2mm.nii.gz"))


def test_missing_file_and_wrong_dimension_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "absent.nii.gz")
    with pytest.raises(InputError, match="3D but the other image is 2D"):
        read_image(DATA_DIR / "mni_mask_2mm.nii.gz", expect_dim=2)


def test_tiny_image_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="too small"):
        read_image(write_sitk(np.ones((3, 3)), tmp_path / "tiny.mha"))


def test_warped_output_follows_the_input_format():
    assert str(warped_output_path("out/x_", "a/b.png")) == "out/x_warped.png"
    assert str(warped_output_path("out/x_", "a/b.nii")) == "out/x_warped.nii.gz"
    assert str(warped_output_path("y", "a/b.mha")) == "ywarped.nii.gz"


def test_write_image_leaves_no_temp_file(tmp_path):
    write_image(oblique_image(3), tmp_path / "a.nii.gz")
    assert sorted(os.listdir(tmp_path)) == ["a.nii.gz"]


def test_png_output_of_out_of_range_values_is_rescaled_not_clipped(tmp_path):
    values = np.linspace(0.0, 1000.0, 600).reshape(20, 30)
    image = Image(values, Grid((30, 20), np.ones(2), np.zeros(2), np.eye(2)))
    back = read_image(write_image(image, tmp_path / "wide.png")).array
    assert back.max() == 255
    assert len(np.unique(back)) > 200  # rescaled, not saturated


def test_written_files_respect_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_image(oblique_image(2), tmp_path / "a.nii.gz")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# --- transforms -----------------------------------------------------------------------

@pytest.mark.parametrize("rigid", [False, True])
@pytest.mark.parametrize("dim", [2, 3])
def test_transform_file_round_trip(tmp_path, dim, rigid):
    center = np.array([10.0, -5.0, 3.0][:dim])
    matrix, translation, _ = known_affine(dim, 8.0, [4.0, -3.0, 2.0][:dim], 0.0 if rigid else 0.05, center)
    path = write_transform(linear_to_sitk(matrix, translation, center, rigid), tmp_path / "t.tfm")
    kind = sitk.ReadTransform(str(path)).Downcast().GetName()
    assert kind == ("Euler2DTransform" if dim == 2 else "Euler3DTransform") if rigid else kind == "AffineTransform"
    back_matrix, back_translation, back_center = read_linear_transform(path, dim)
    np.testing.assert_allclose(back_matrix, matrix, atol=1e-12)
    np.testing.assert_allclose(back_translation, translation, atol=1e-12)
    np.testing.assert_allclose(back_center, center, atol=1e-12)


def test_mapped_points_follow_the_itk_direction_convention():
    """W(x) = c + A(x − c) + t for every voxel of the grid, evaluated by ITK."""
    image = oblique_image(3)
    center = image.grid.center()
    matrix, translation, _ = known_affine(3, 8.0, [4.0, -3.0, 2.0], 0.05, center)
    points = image.grid.physical_points()
    expected = center + (points - center) @ matrix.T + translation
    mapped = mapped_points(linear_to_sitk(matrix, translation, center, rigid=False), image.grid)
    np.testing.assert_allclose(mapped, expected, atol=1e-9)


def test_unreadable_or_mismatched_transforms_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_transform(tmp_path / "absent.tfm")
    garbage = tmp_path / "garbage.tfm"
    garbage.write_text("#Insight Transform File V1.0\nTransform: Nonsense\n")
    with pytest.raises(InputError):
        read_transform(garbage)
    path = write_transform(sitk.AffineTransform(2), tmp_path / "t2.tfm")
    with pytest.raises(InputError, match="2D transform"):
        read_linear_transform(path, 3)
    field = sitk.DisplacementFieldTransform(sitk.Image([4, 4], sitk.sitkVectorFloat64, 2))
    field_path = write_transform(field, tmp_path / "field.h5")
    with pytest.raises(InputError, match="not a linear"):
        read_linear_transform(field_path, 2)
