"""Small data sets in each supported layout, written on the fly for tests and benchmarks.

Nothing here is needed to train; it lets tests exercise the real readers (folders, TFRecords, the
tfds `imagenet2012` builder) on a few tiny files instead of ImageNet.
"""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
import tensorflow as tf


def smooth_image(seed: int, height: int, width: int) -> np.ndarray:
    """A deterministic uint8 RGB image with smooth content (JPEG-friendly, like a photo).

    Args:
        seed: NumPy seed.
        height: rows.
        width: columns.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(max(2, height // 8), max(2, width // 8), 3))
    image = tf.image.resize(coarse, [height, width], method="bicubic").numpy()
    image += rng.normal(0, 4, size=image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 [H, W, 1 or 3] array.

    Args:
        image: the pixels.
        quality: JPEG quality.
    """
    return tf.io.encode_jpeg(image, quality=quality).numpy()


def _canonical_huffman(bits: list[int], values: list[int]) -> dict[int, tuple[int, int]]:
    # JPEG Annex C: codes of each length are consecutive integers, lengths in increasing order.
    codes, code, k = {}, 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


# JPEG Annex K.3 luminance DC table (categories 0..11).
_DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
_DC_VALUES = list(range(12))


def cmyk_jpeg(block_colors: np.ndarray) -> bytes:
    """A baseline Adobe CMYK JPEG made of flat 8x8 blocks (no PIL needed).

    ImageNet has 22 CMYK JPEGs; `tf.io.encode_jpeg` cannot write one, so this tiny encoder writes
    4-component blocks whose only non-zero DCT coefficient is DC (exact for flat blocks). Values
    are stored as Adobe applications do (inverted: 255 = no ink).

    Args:
        block_colors: uint8 [rows, cols, 4], the stored CMYK value of each 8x8 block.

    Returns:
        The JPEG file's bytes; the image is (8 * rows) x (8 * cols) pixels.
    """
    block_colors = np.asarray(block_colors, dtype=np.int64)
    rows, cols, _ = block_colors.shape

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    out = bytearray(b"\xff\xd8")
    # APP14 "Adobe", transform 0: the 4 components are CMYK, not YCCK.
    out += segment(0xEE, b"Adobe" + bytes([0, 100, 0, 0, 0, 0, 0]))
    out += segment(0xDB, bytes([0]) + bytes([1] * 64))  # quantisation table 0, all ones
    sof = bytes([8]) + (8 * rows).to_bytes(2, "big") + (8 * cols).to_bytes(2, "big") + bytes([4])
    for component in range(4):
        sof += bytes([component + 1, 0x11, 0])
    out += segment(0xC0, sof)
    out += segment(0xC4, bytes([0x00]) + bytes(_DC_BITS) + bytes(_DC_VALUES))
    # AC table with the single symbol EOB (0x00): every block ends right after its DC term.
    out += segment(0xC4, bytes([0x10]) + bytes([1] + [0] * 15) + bytes([0x00]))
    sos = bytes([4])
    for component in range(4):
        sos += bytes([component + 1, 0x00])
    out += segment(0xDA, sos + bytes([0, 63, 0]))

    dc_codes = _canonical_huffman(_DC_BITS, _DC_VALUES)
    bitstring = []
    previous = [0, 0, 0, 0]
    for r in range(rows):
        for c in range(cols):
            for component in range(4):
                # A flat block of value v has DC coefficient 8 * (v - 128) after level shift.
                dc = 8 * (int(block_colors[r, c, component]) - 128)
                diff = dc - previous[component]
                previous[component] = dc
                category = abs(diff).bit_length()
                code, length = dc_codes[category]
                bitstring.append(format(code, f"0{length}b"))
                if category:
                    extra = diff if diff > 0 else diff + (1 << category) - 1
                    bitstring.append(format(extra, f"0{category}b"))
                bitstring.append("0")  # EOB
    bits = "".join(bitstring)
    bits += "1" * (-len(bits) % 8)  # pad with ones (Annex F.1.2.3)
    for i in range(0, len(bits), 8):
        byte = int(bits[i : i + 8], 2)
        out.append(byte)
        if byte == 0xFF:
            out.append(0x00)  # byte stuffing
    out += b"\xff\xd9"
    return bytes(out)


def write_image_folder(
    root: str | os.PathLike,
    class_names: list[str],
    images_per_class: dict[str, int],
    size: tuple[int, int] = (40, 56),
    seed: int = 0,
) -> str:
    """Writes ImageNet-style folders `<root>/<split>/<class>/<class>_<i>.JPEG`.

    Args:
        root: the data set folder.
        class_names: class folder names.
        images_per_class: {"train": n, "val": m}.
        size: (height, width) of every image.
        seed: pixel seed.

    Returns:
        root as a string.
    """
    root = os.fspath(root)
    for split, count in images_per_class.items():
        for c, name in enumerate(class_names):
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                image = smooth_image(seed + 1000 * c + i + (7919 if split != "train" else 0), *size)
                with open(os.path.join(folder, f"{name}_{i}.JPEG"), "wb") as f:
                    f.write(encode_jpeg(image))
    return root


def write_tfrecords(
    root: str | os.PathLike,
    split: str,
    num_shards: int,
    examples: list[tuple[bytes, int]],
) -> list[str]:
    """Writes `<root>/<split>-0000i-of-0000n` TFRecords in the Inception/TPU ImageNet layout.

    Args:
        root: target folder.
        split: "train" or "validation".
        num_shards: number of files; examples are dealt round-robin.
        examples: (encoded image, stored label) pairs; labels are written as given.

    Returns:
        The shard paths.
    """
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    paths = [os.path.join(root, f"{split}-{i:05d}-of-{num_shards:05d}") for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(path) for path in paths]
    for index, (encoded, label) in enumerate(examples):
        feature = {
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
            "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            "image/filename": tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[f"{split}_{index}.JPEG".encode()])
            ),
            "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
        }
        record = tf.train.Example(features=tf.train.Features(feature=feature))
        writers[index % num_shards].write(record.SerializeToString())
    for writer in writers:
        writer.close()
    return paths


def _add_to_tar(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_fake_ilsvrc2012_tars(
    manual_dir: str | os.PathLike,
    wnids: list[str],
    train_per_class: int,
    num_val: int,
    size: tuple[int, int] = (40, 56),
) -> dict[str, str]:
    """Writes tiny ILSVRC2012_img_train.tar / ILSVRC2012_img_val.tar in the real layout.

    The train tar holds one `<wnid>.tar` per class with `<wnid>_<i>.JPEG` files; the val tar holds
    `ILSVRC2012_val_0000000k.JPEG`. tfds labels val images by pairing their sorted names with the
    lines of its bundled validation_labels.txt, so image k gets the label of ImageNet's val
    image k.

    Args:
        manual_dir: the tfds manual download folder.
        wnids: class folders of the train tar.
        train_per_class: images per class.
        num_val: number of validation images.
        size: (height, width) of every image.

    Returns:
        {"train": path, "validation": path}.
    """
    manual_dir = os.fspath(manual_dir)
    os.makedirs(manual_dir, exist_ok=True)
    train_path = os.path.join(manual_dir, "ILSVRC2012_img_train.tar")
    val_path = os.path.join(manual_dir, "ILSVRC2012_img_val.tar")
    with tarfile.open(train_path, "w") as outer:
        for c, wnid in enumerate(wnids):
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as inner:
                for i in range(train_per_class):
                    image = encode_jpeg(smooth_image(100 * c + i, *size))
                    _add_to_tar(inner, f"{wnid}_{i + 1}.JPEG", image)
            _add_to_tar(outer, f"{wnid}.tar", buffer.getvalue())
    with tarfile.open(val_path, "w") as tar:
        for k in range(1, num_val + 1):
            image = encode_jpeg(smooth_image(50_000 + k, *size))
            _add_to_tar(tar, f"ILSVRC2012_val_{k:08d}.JPEG", image)
    return {"train": train_path, "validation": val_path}


def write_digits_folder(
    root: str | os.PathLike,
    upscale: int = 12,
    validation_fraction: float = 0.2,
    seed: int = 0,
) -> str:
    """scikit-learn's handwritten digits as ImageNet-style folders of grayscale JPEGs.

    A real (if small) data set for tests: 1,797 8x8 scans of 10 digits, the 0..16 ink levels
    stretched to 0..255 and upscaled `upscale` times (bilinear), split by class proportion into
    `<root>/train/<digit>/` (1,437 images) and `<root>/val/<digit>/` (360 images). The JPEGs are
    single-channel, like many scanned or medical sets, so readers must expand them to RGB.
    Needs scikit-learn (a test dependency, not a dependency of the package).

    Args:
        root: the data set folder.
        upscale: pixels per digit pixel (12: 96x96 images).
        validation_fraction: share of each class written to `val`.
        seed: the split's seed.

    Returns:
        root as a string.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    root = os.fspath(root)
    digits = load_digits()
    train_idx, val_idx = train_test_split(
        np.arange(len(digits.target)),
        test_size=validation_fraction,
        stratify=digits.target,
        random_state=seed,
    )
    size = 8 * upscale
    for split, indices in (("train", train_idx), ("val", val_idx)):
        for index in sorted(indices):
            label = int(digits.target[index])
            folder = os.path.join(root, split, str(label))
            os.makedirs(folder, exist_ok=True)
            ink = digits.images[index][..., None] * (255.0 / 16.0)
            image = tf.image.resize(ink, [size, size], method="bilinear").numpy()
            pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
            with open(os.path.join(folder, f"{index:04d}.jpg"), "wb") as f:
                f.write(encode_jpeg(pixels))
    return root
