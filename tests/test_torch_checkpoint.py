"""Tests for ``eca_keras.convert.torch_checkpoint``; torch is only used to write the files."""

import argparse
import collections
import io
import os
import pickle
import shlex
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from torch_or_skip import import_torch

torch = import_torch()

from eca_keras.convert import torch_checkpoint  # noqa: E402
from eca_keras.convert.torch_checkpoint import (  # noqa: E402
    CheckpointFormatError,
    UnsafeCheckpointError,
    load_torch_checkpoint,
    read_state_dict,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
FORMATS = pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])


def save(obj, path, zip_format=True):
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    return path


def assert_tensor_equal(array, tensor):
    tensor = tensor.detach()
    expected = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    assert isinstance(array, np.ndarray)
    assert array.dtype == expected.dtype
    assert array.shape == expected.shape
    assert array.flags.c_contiguous and array.flags.writeable
    np.testing.assert_array_equal(array, expected)


def tensor_zoo():
    g = torch.Generator().manual_seed(0)
    base = torch.arange(24, dtype=torch.float32)
    return collections.OrderedDict(
        f32=torch.randn(3, 4, generator=g),
        f16=torch.randn(5, generator=g).half(),
        f64=torch.randn(2, 2, generator=g, dtype=torch.float64),
        bf16=torch.cat([torch.randn(7, generator=g), torch.tensor([0.0, -0.0, 1e38, -1e-30])])
        .bfloat16()
        .reshape(1, 11),
        bf16_special=torch.tensor([float("inf"), float("-inf"), float("nan")]).bfloat16(),
        i64=torch.tensor([-(2**40), 0, 2**40]),
        i32=torch.tensor([[-5, 7]], dtype=torch.int32),
        i16=torch.tensor([-300, 300], dtype=torch.int16),
        i8=torch.tensor([-128, 127], dtype=torch.int8),
        u8=torch.tensor([0, 7, 255], dtype=torch.uint8),
        u16=torch.tensor([1, 65535], dtype=torch.int32).to(torch.uint16),  # _rebuild_tensor_v3
        flags=torch.tensor([True, False, True]),
        c64=torch.tensor([1 + 2j, -3j], dtype=torch.complex64),
        scalar=torch.tensor(1.5),
        num_batches_tracked=torch.tensor(123),
        empty=torch.zeros(0, 3),
        transposed=torch.randn(3, 5, generator=g).t(),
        expanded=torch.randn(3, generator=g).expand(4, 3),  # stride 0
        channels_last=torch.randn(2, 3, 2, 2, generator=g).to(memory_format=torch.channels_last),
        base=base,  # the next two are views sharing this storage
        sliced=base[5:11],
        strided=base.view(4, 6)[1:, ::2],
        param=torch.nn.Parameter(torch.randn(4, generator=g)),
    )


@FORMATS
def test_dtypes_views_and_parameters(tmp_path, zip_format):
    zoo = tensor_zoo()
    loaded = load_torch_checkpoint(save(zoo, tmp_path / "zoo.pth", zip_format))
    assert type(loaded) is collections.OrderedDict
    assert list(loaded) == list(zoo)
    for name, tensor in zoo.items():
        assert_tensor_equal(loaded[name], tensor)
    assert loaded["bf16"].dtype == np.float32  # bfloat16 is widened exactly
    assert loaded["scalar"].shape == () and loaded["num_batches_tracked"].dtype == np.int64
    shared = [loaded["base"], loaded["sliced"], loaded["strided"]]
    for i, a in enumerate(shared):
        for b in shared[i + 1 :]:
            assert not np.shares_memory(a, b)


@FORMATS
def test_top_level_tensor_and_parameter(tmp_path, zip_format):
    tensor = torch.randn(2, 3)
    assert_tensor_equal(load_torch_checkpoint(save(tensor, tmp_path / "t.pt", zip_format)), tensor)
    param = torch.nn.Parameter(torch.randn(3))
    assert_tensor_equal(load_torch_checkpoint(save(param, tmp_path / "p.pt", zip_format)), param)


@FORMATS
def test_eca_release_wrapping(tmp_path, zip_format):
    weights = collections.OrderedDict(
        [
            ("module.conv1.weight", torch.randn(4, 3, 3, 3)),
            ("module.layer1.0.eca.conv.weight", torch.randn(1, 1, 3)),
            ("module.bn1.num_batches_tracked", torch.tensor(5)),
        ]
    )
    checkpoint = {
        "epoch": 100,
        "arch": "eca_resnet50",
        "state_dict": weights,
        "best_prec1": torch.tensor(77.42),
        "optimizer": {
            "state": {},
            "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1]}],
        },
    }
    path = save(checkpoint, tmp_path / "eca_resnet50_k3557.pth.tar", zip_format)
    loaded = load_torch_checkpoint(path)
    assert loaded["epoch"] == 100 and loaded["arch"] == "eca_resnet50"
    assert_tensor_equal(loaded["best_prec1"], checkpoint["best_prec1"])
    assert loaded["optimizer"]["param_groups"] == checkpoint["optimizer"]["param_groups"]
    state = read_state_dict(path)
    assert list(state) == [k.removeprefix("module.") for k in weights]
    for key, tensor in weights.items():
        assert_tensor_equal(state[key.removeprefix("module.")], tensor)


@FORMATS
def test_real_model_state_dict(tmp_path, zip_format):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv1d(1, 1, 3, padding=1, bias=False),
    )
    model[1](torch.randn(4, 8, 5, 5))  # non-trivial running stats and num_batches_tracked
    expected = model.state_dict()
    state = read_state_dict(save(expected, tmp_path / "model.pth", zip_format))
    assert list(state) == list(expected)
    for key, tensor in expected.items():
        assert_tensor_equal(state[key], tensor)
    wrapped = read_state_dict(save({"model": expected}, tmp_path / "wrapped.pth", zip_format))
    assert list(wrapped) == list(expected)


@FORMATS
def test_numpy_scalars_and_containers(tmp_path, zip_format):
    obj = {
        "best_prec1": np.float64(77.42),
        "step": np.int64(7),
        "flag": np.bool_(True),
        "shape": torch.Size([2, 3]),
        "ids": {1, 2},
        "blob": b"\x00\xff",
        "betas": (0.9, 0.999),
        "z": 1 + 2j,
    }
    loaded = load_torch_checkpoint(save(obj, tmp_path / "misc.pth", zip_format))
    assert loaded == {**obj, "shape": (2, 3)}
    assert type(loaded["best_prec1"]) is np.float64 and type(loaded["shape"]) is tuple


def rewrite_zip(src, dst, rename=lambda name: name, edit=lambda name, data: data):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(rename(info.filename), edit(info.filename, zin.read(info)))
    return dst


def test_zip_archive_prefix_is_arbitrary(tmp_path):
    tensor = torch.randn(3)
    buffer = io.BytesIO()
    torch.save({"w": tensor}, buffer)  # prefix "archive/" when saving to a buffer
    (tmp_path / "buffer.pth").write_bytes(buffer.getvalue())
    path = rewrite_zip(
        tmp_path / "buffer.pth",
        tmp_path / "renamed.pth",
        rename=lambda name: name.replace("archive/", "eca resnet-50.v1/", 1),
    )
    assert_tensor_equal(read_state_dict(path)["w"], tensor)


def test_big_endian_zip(tmp_path):
    obj = {"w": torch.randn(2, 3), "n": torch.tensor([1, -(2**40)])}
    src = save(obj, tmp_path / "little.pth")
    dtypes = {"0": "<f4", "1": "<i8"}  # storage keys in pickling order

    def to_big_endian(name, data):
        if name.endswith("/byteorder"):
            return b"big"
        key = name.rsplit("/data/", 1)[-1] if "/data/" in name else None
        return np.frombuffer(data, dtypes[key]).byteswap().tobytes() if key in dtypes else data

    loaded = read_state_dict(rewrite_zip(src, tmp_path / "big.pth", edit=to_big_endian))
    for key, tensor in obj.items():
        assert_tensor_equal(loaded[key], tensor)


# -- hand-written legacy files (storage views, bounds checks) --------------------------------


class _StorageRef:
    def __init__(self, pid):
        self.pid = pid


class _Reduce:
    def __init__(self, *reduce_value):
        self.reduce_value = reduce_value

    def __reduce__(self):
        return self.reduce_value


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _StorageRef) else None


def write_legacy(path, obj, storages):
    buffer = io.BytesIO()
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}
    for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
        pickle.dump(header, buffer, protocol=2)
    _Pickler(buffer, protocol=2).dump(obj)
    pickle.dump(list(storages), buffer, protocol=2)
    for array in storages.values():
        buffer.write(struct.pack("<q", array.size) + array.astype("<f4").tobytes())
    path.write_bytes(buffer.getvalue())
    return path


def legacy_tensor(pid, offset, size, stride):
    args = (_StorageRef(pid), offset, size, stride)
    return _Reduce(torch._utils._rebuild_tensor, args)


def test_legacy_storage_views(tmp_path):
    root = ("storage", torch.FloatStorage, "root", "cpu", 10)
    obj = {
        "root": legacy_tensor(root + (None,), 0, (10,), (1,)),
        # torch < 0.4 storage view: elements 2..7 of "root"
        "view": legacy_tensor(root + (("v", 2, 6),), 1, (2, 2), (1, 2)),
    }
    data = np.arange(10, dtype=np.float32)
    loaded = load_torch_checkpoint(write_legacy(tmp_path / "views.pth", obj, {"root": data}))
    np.testing.assert_array_equal(loaded["root"], data)
    np.testing.assert_array_equal(loaded["view"], [[3, 5], [4, 6]])


@pytest.mark.parametrize(
    ("offset", "size", "stride"),
    [(0, (11,), (1,)), (8, (3,), (1,)), (0, (4, 3), (3, 1)), (0, (2,), (-1,)), (-1, (1,), (1,))],
)
def test_tensor_outside_its_storage_is_rejected(tmp_path, offset, size, stride):
    pid = ("storage", torch.FloatStorage, "0", "cpu", 10, None)
    obj = {"x": legacy_tensor(pid, offset, size, stride)}
    path = write_legacy(tmp_path / "oob.pth", obj, {"0": np.zeros(10, np.float32)})
    with pytest.raises(CheckpointFormatError):
        load_torch_checkpoint(path)


# -- security ---------------------------------------------------------------------------------


def payloads(marker):
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": (os.system, (f"touch {shlex.quote(str(marker))}",)),
        "subprocess.call": (subprocess.call, (["touch", str(marker)],)),
        "builtins.eval": (eval, (code,)),
        "builtins.exec": (exec, (code,)),
        "builtins.getattr": (getattr, (collections.OrderedDict, "fromkeys")),
        "builtins.__import__": (__import__, ("os",)),
        "argparse.Namespace": (argparse.Namespace, ()),
    }


PAYLOADS = list(payloads("x"))


def write_malicious(path, payload, container):
    evil = _Reduce(*payload)
    if container == "raw-pickle-2":
        path.write_bytes(pickle.dumps(evil, protocol=2))
    elif container == "raw-pickle-5":  # STACK_GLOBAL instead of GLOBAL
        path.write_bytes(pickle.dumps({"x": evil}, protocol=5))
    else:
        wrapped = {"state_dict": {"w": torch.ones(2), "x": evil}}
        save(wrapped, path, zip_format=container == "torch-zip")
    return path


@pytest.mark.parametrize("container", ["torch-zip", "torch-legacy", "raw-pickle-2", "raw-pickle-5"])
@pytest.mark.parametrize("name", PAYLOADS)
def test_malicious_globals_are_refused(tmp_path, name, container):
    marker = tmp_path / "pwned"
    path = write_malicious(tmp_path / "evil.pth", payloads(marker)[name], container)
    if name == "os.system":
        real_name = f"{os.system.__module__}.system"  # posix.system / nt.system
    elif name == "subprocess.call":
        real_name = "subprocess.call"
    else:
        real_name = name
    for load in (load_torch_checkpoint, read_state_dict):
        with pytest.raises(UnsafeCheckpointError, match="malicious") as info:
            load(path)
        assert real_name in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()


def test_payload_is_live_under_plain_torch_load(tmp_path):
    """Guards the test above: the same file does run code under an unrestricted loader."""
    marker = tmp_path / "pwned"
    path = write_malicious(tmp_path / "evil.pth", payloads(marker)["os.system"], "torch-zip")
    torch.load(path, weights_only=False)
    assert marker.exists()


@FORMATS
def test_build_on_arbitrary_objects_is_refused(tmp_path, zip_format):
    path = save({"s": _Reduce(set, ([1],), {"attr": 1})}, tmp_path / "build.pth", zip_format)
    with pytest.raises(UnsafeCheckpointError, match="set"):
        load_torch_checkpoint(path)


# -- allocations: bounded by the file's size ---------------------------------------------------


def peak_allocation(load, path):
    """Bytes Python allocated at most while ``load(path)`` refused the file."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises((CheckpointFormatError, UnsafeCheckpointError)) as refused:
            load(path)
        return tracemalloc.get_traced_memory()[1], refused.value
    finally:
        tracemalloc.stop()


def test_a_tiny_file_cannot_ask_for_gigabytes(tmp_path):
    """A 30-byte pickle asking for ``bytearray(2**30)``, a tensor expanded over a 4-byte storage
    to 2**40 elements, a zip entry claiming far more bytes than the file: refused, having
    allocated almost nothing."""
    bomb = tmp_path / "bytearray.pth"
    bomb.write_bytes(b"\x80\x02cbuiltins\nbytearray\nJ\x00\x00\x00\x40\x85R.")
    assert len(bomb.read_bytes()) == 30
    peak, error = peak_allocation(load_torch_checkpoint, bomb)
    assert peak < 2**24 and "refusing bytearray" in str(error)

    pid = ("storage", torch.FloatStorage, "0", "cpu", 1, None)
    expanded = {"x": legacy_tensor(pid, 0, (2**20, 2**20), (0, 0))}
    path = write_legacy(tmp_path / "expanded.pth", expanded, {"0": np.zeros(1, np.float32)})
    peak, error = peak_allocation(load_torch_checkpoint, path)
    assert peak < 2**24 and "refusing to allocate" in str(error)

    inflated = tmp_path / "inflated.pth"
    source = save({"w": torch.zeros(4)}, tmp_path / "small.pth")
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(inflated, "w") as zout:
        for info in zin.infolist():
            payload = zin.read(info)
            if info.filename.endswith("/data/0"):  # 64 MiB of zeros, deflated to ~64 KiB
                payload = bytes(2**26)
            zout.writestr(info.filename, payload, compress_type=zipfile.ZIP_DEFLATED)
    assert os.path.getsize(inflated) < 2**20
    peak, error = peak_allocation(load_torch_checkpoint, inflated)
    assert peak < 2**24 and "more than the file's" in str(error)


@FORMATS
@pytest.mark.parametrize("protocol", [2, 5])
def test_bytearrays_stored_in_the_file_still_load(tmp_path, zip_format, protocol):
    obj = {"b": bytearray(b"\x00\xffab"), "e": bytearray(), "w": torch.ones(2)}
    path = tmp_path / "bytes.pth"
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format, pickle_protocol=protocol)
    loaded = load_torch_checkpoint(path)
    assert loaded["b"] == bytearray(b"\x00\xffab") and loaded["e"] == bytearray()
    assert type(loaded["b"]) is bytearray


# -- malformed files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, I am a text file\n",
        b"\x00" + np.random.default_rng(0).bytes(4096),
        b"\x80" + np.random.default_rng(1).bytes(4096),
        b"PK" + np.random.default_rng(2).bytes(4096),
        pickle.dumps({"not": "a checkpoint"}, protocol=2),
    ],
    ids=["empty", "text", "garbage", "garbage-pickle-like", "garbage-zip-like", "plain-pickle"],
)
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointFormatError, match="bad.pth"):
        load_torch_checkpoint(path)


def test_zip_without_data_pkl(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointFormatError, match="data.pkl"):
        load_torch_checkpoint(path)


@FORMATS
@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.9, 0.999])
def test_truncated_file(tmp_path, zip_format, keep):
    path = save(tensor_zoo(), tmp_path / "full.pth", zip_format)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointFormatError):
        load_torch_checkpoint(path)


def same(a, b):
    """Equal objects of equal types (arrays: dtype, shape and values)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and (a.dtype, a.shape) == (b.dtype, b.shape)
            and np.array_equal(a, b, equal_nan=True)
        )
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_every_truncation_is_refused(tmp_path):
    for zip_format in (True, False):
        obj = {"state_dict": {"w": torch.randn(2, 3), "n": torch.tensor(4)}, "epoch": 1}
        data = save(obj, tmp_path / "full.pth", zip_format).read_bytes()
        path = tmp_path / "broken.pth"
        for cut in range(0, len(data), 3):
            path.write_bytes(data[:cut])
            with pytest.raises(CheckpointFormatError):
                load_torch_checkpoint(path)


@FORMATS
def test_a_corrupted_byte_is_refused_or_harmless(tmp_path, zip_format):
    """300 files with one byte changed at random. The zip format checks a CRC of every entry:
    each corruption is refused or changes nothing. The legacy format has no checksum: a byte of
    a storage's raw data loads as another value (no reader can tell), and a changed key name
    loads as that name, which the conversion's name check then refuses; anything else is
    refused or changes nothing."""
    state = {"w": torch.randn(2, 3), "n": torch.tensor(4)}
    data = save({"state_dict": state, "epoch": 1}, tmp_path / "full.pth", zip_format).read_bytes()
    original = load_torch_checkpoint(tmp_path / "full.pth")
    # Legacy: the storages are the file's last bytes, each an 8-byte count and its data.
    storages_start = len(data) - sum(8 + t.numel() * t.element_size() for t in state.values())
    path, rng = tmp_path / "broken.pth", np.random.default_rng(0)
    outcomes = collections.Counter()
    for _ in range(300):
        position, value = int(rng.integers(len(data))), int(rng.integers(1, 256))
        corrupt = bytearray(data)
        corrupt[position] ^= value  # never the same byte
        path.write_bytes(bytes(corrupt))
        try:
            loaded = load_torch_checkpoint(path)
        except (CheckpointFormatError, UnsafeCheckpointError):
            outcomes["refused"] += 1
            continue
        if same(loaded, original):
            outcomes["harmless"] += 1
            continue
        assert not zip_format, f"byte {position}: a silent change despite the CRC"
        keys, original_keys = list(loaded["state_dict"]), list(original["state_dict"])
        if position >= storages_start:  # raw tensor data: the same tensors, other values
            assert keys == original_keys
            assert all(
                (loaded["state_dict"][k].shape, loaded["state_dict"][k].dtype)
                == (original["state_dict"][k].shape, original["state_dict"][k].dtype)
                for k in keys
            )
            outcomes["values"] += 1
        else:  # the pickle: only names, which the conversion checks
            renamed = keys != original_keys or list(loaded) != list(original)
            assert renamed, f"byte {position}: {loaded!r}"
            outcomes["names"] += 1
    assert outcomes["refused"] >= 100, outcomes


def test_truncated_zip_storage_entry(tmp_path):
    src = save({"w": torch.randn(100)}, tmp_path / "full.pth")
    path = rewrite_zip(
        src, tmp_path / "short.pth", edit=lambda name, data: data[:37] if "/data/" in name else data
    )
    with pytest.raises(CheckpointFormatError, match="truncated"):
        load_torch_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_torch_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError):
        read_state_dict(str(tmp_path / "nope.pth"))


def test_read_state_dict_rejects_non_state_dicts(tmp_path):
    with pytest.raises(CheckpointFormatError, match="not a tensor"):
        read_state_dict(save({"epoch": 3, "arch": "eca_resnet50"}, tmp_path / "meta.pth"))
    clash = {"module.w": torch.ones(1), "w": torch.ones(1)}
    with pytest.raises(CheckpointFormatError, match="duplicate"):
        read_state_dict(save(clash, tmp_path / "clash.pth"))


# -- torch must never be imported -------------------------------------------------------------


@pytest.mark.parametrize("import_via", ["package", "file"])
def test_module_does_not_import_torch(tmp_path, import_via):
    files = [
        str(save(tensor_zoo(), tmp_path / f"{kind}.pth", kind == "zip"))
        for kind in ("zip", "legacy")
    ]
    if import_via == "package":
        setup = "import eca_keras.convert.torch_checkpoint as m"
    else:  # no package __init__ involved: only this module's own imports
        setup = (
            "import importlib.util; "
            f"spec = importlib.util.spec_from_file_location('tc', {torch_checkpoint.__file__!r}); "
            "m = importlib.util.module_from_spec(spec); sys.modules['tc'] = m; "
            "spec.loader.exec_module(m)"
        )
    code = (
        f"import sys; {setup}\n"
        f"for f in {files!r}: assert m.read_state_dict(f)['f32'].shape == (3, 4)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
