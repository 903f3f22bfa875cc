"""Round trips of every supported encoding through decode_image_message, and every bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from bag_writing import OPENCV_DATA, CompressedImage, encode_raw, make_header, make_image_message
from hostile_images import late_header_jpeg, rle_bmp_bomb
from sensor_msgs.msg import CompressedImage as RclpyCompressedImage
from sensor_msgs.msg import Image as RclpyImage

from flowfeat_core.data.image_codec import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    decode_image_message,
    encode_compressed,
)
from flowfeat_core.data.image_size import message_image_size


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo (opencv-doc fruits.jpg) at 160x120 with even size, as RGB."""
    bgr = cv2.imread(str(OPENCV_DATA / "fruits.jpg"))
    assert bgr is not None
    return cv2.cvtColor(cv2.resize(bgr, (160, 120), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_BGR2RGB)


def mean_error(decoded: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(decoded.astype(np.int16) - expected.astype(np.int16)).mean())


def expected_rgb(photo: np.ndarray, encoding: str) -> np.ndarray:
    """What a perfect decoder returns: the photo, or its gray version for mono encodings."""
    if encoding.startswith("mono"):
        return np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    return photo


def tolerance(encoding: str) -> float:
    """Largest accepted mean absolute error: lossless encodings must be exact; measured errors on
    this photo are 4.2 for bilinear Bayer demosaicing and 1.5 for YUV 4:2:2 (a wrong Bayer
    pattern or chroma order gives 34-45)."""
    if encoding.startswith("bayer"):
        return 5.0
    return 2.0 if encoding in ("yuv422", "uyvy", "yuyv", "yuv422_yuy2") else 0.0


ROUND_TRIP_ENCODINGS = [encoding for encoding in SUPPORTED_ENCODINGS
                        if not encoding.endswith("16") or encoding.startswith(("mono", "bayer"))]


@pytest.mark.parametrize("encoding", ROUND_TRIP_ENCODINGS)
def test_rosbags_message_round_trip(photo: np.ndarray, encoding: str) -> None:
    decoded = decode_image_message(make_image_message(photo, encoding, 0))
    assert decoded.shape == photo.shape and decoded.dtype == np.uint8
    assert mean_error(decoded, expected_rgb(photo, encoding)) <= tolerance(encoding)


def test_bayer_demosaic_is_not_trivially_gray(photo: np.ndarray) -> None:
    """All four patterns recover colour: a wrong pattern swaps red and blue on a colourful photo."""
    for pattern in ("rggb", "bggr", "gbrg", "grbg"):
        decoded = decode_image_message(make_image_message(photo, f"bayer_{pattern}8", 0))
        swapped = decoded[:, :, ::-1]
        assert mean_error(decoded, photo) < mean_error(swapped, photo) / 3


def test_padded_rows_and_big_endian(photo: np.ndarray) -> None:
    padded = make_image_message(photo, "bgr8", 0, row_padding=13)
    assert padded.step == 160 * 3 + 13
    assert np.array_equal(decode_image_message(padded), photo)
    big = make_image_message(photo, "mono16", 0, big_endian=True, row_padding=6)
    assert mean_error(decode_image_message(big), expected_rgb(photo, "mono16")) == 0.0


def test_decoded_array_is_a_writable_copy(photo: np.ndarray) -> None:
    message = make_image_message(photo, "rgb8", 0)
    decoded = decode_image_message(message)
    decoded[:] = 0
    assert np.array_equal(decode_image_message(message), photo)


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono16", "bayer_grbg16", "yuv422_yuy2"])
def test_rclpy_image_round_trip(photo: np.ndarray, encoding: str) -> None:
    pixels = encode_raw(photo, encoding)
    message = RclpyImage(height=120, width=160, encoding=encoding, is_bigendian=0,
                         step=pixels.nbytes // 120, data=pixels.tobytes())
    reference = decode_image_message(make_image_message(photo, encoding, 0))
    assert np.array_equal(decode_image_message(message), reference)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_round_trip_rosbags_and_rclpy(photo: np.ndarray, fmt: str) -> None:
    data = encode_compressed(photo, fmt)
    rosbags_message = CompressedImage(make_header(0), fmt, np.frombuffer(data, np.uint8))
    rclpy_message = RclpyCompressedImage(format=f"rgb8; {fmt} compressed bgr8", data=data)
    for message in (rosbags_message, rclpy_message):
        decoded = decode_image_message(message)
        assert decoded.shape == photo.shape
        # Measured: 4.0 for quality-90 jpeg of this detailed 160x120 photo; png is lossless.
        assert mean_error(decoded, photo) <= (5.0 if fmt == "jpeg" else 0.0)


def raw_fields(photo: np.ndarray, **changes: object) -> RclpyImage:
    """An rclpy rgb8 Image of the photo with some fields replaced."""
    fields = {"height": 120, "width": 160, "encoding": "rgb8", "step": 480,
              "data": photo.tobytes(), **changes}
    return RclpyImage(**fields)


@pytest.mark.parametrize(("changes", "problem"), [
    ({"height": 0, "data": b""}, "image 160x0 rgb8: zero-size image"),
    ({"width": 0, "step": 0, "data": b""}, "image 0x120 rgb8: zero-size image"),
    ({"step": 479}, "image 160x120 rgb8: step 479 is smaller than width*bytes_per_pixel = 480"),
    ({"data": b"\0" * 1000}, "image 160x120 rgb8: data has 1000 bytes, expected >= 57600"),
    ({"encoding": "32FC1"}, "image 160x120 32FC1: unsupported encoding"),
    ({"encoding": "nv12"}, "image 160x120 nv12: unsupported encoding"),
])
def test_bad_raw_images_raise_one_line_errors(photo: np.ndarray, changes: dict, problem: str
                                              ) -> None:
    with pytest.raises(ImageDecodeError) as caught:
        decode_image_message(raw_fields(photo, **changes))
    assert str(caught.value).startswith(problem)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_bad_compressed_images_raise(photo: np.ndarray) -> None:
    png = encode_compressed(photo, "png")
    cases = {
        "data is empty": RclpyCompressedImage(format="jpeg", data=b""),
        "not a jpeg image with a readable size": RclpyCompressedImage(
            format="jpeg", data=b"\xff\xd8garbage" * 50),
        "names neither jpeg nor png": RclpyCompressedImage(format="bmp", data=png),
        "not a jpeg image": RclpyCompressedImage(format="jpeg", data=png),
        "not a decodable jpeg/png": RclpyCompressedImage(format="png", data=png[: len(png) // 2]),
        "compressedDepth": RclpyCompressedImage(format="16UC1; compressedDepth png", data=png),
    }
    for problem, message in cases.items():
        with pytest.raises(ImageDecodeError, match=problem):
            decode_image_message(message)


def test_encode_compressed_rejects_bad_input(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unsupported compressed format"):
        encode_compressed(photo, "bmp")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_compressed(photo[:, :, 0], "png")


def test_decompression_bombs_are_refused_from_their_header(photo: np.ndarray) -> None:
    """A 1 kB RLE BMP declaring 30000x30000 sent as "png", and a JPEG whose size sits past the
    first 64 KiB, used to be decoded at full size (peak RSS 6.3 GB) before being refused."""
    bomb = RclpyCompressedImage(format="png", data=rle_bmp_bomb())
    with pytest.raises(ImageDecodeError, match="not a png image"):
        decode_image_message(bomb)
    with pytest.raises(ValueError, match="not a png image"):
        message_image_size(bomb)
    late = RclpyCompressedImage(format="rgb8; jpeg compressed bgr8", data=late_header_jpeg(photo))
    assert message_image_size(late) == (20000, 16000)
    with pytest.raises(ImageDecodeError, match="declares 20000x16000"):
        decode_image_message(late)
