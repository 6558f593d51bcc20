"""Writing files safely: to a temporary name beside the final one, then a rename, so a process
killed at any moment leaves the old file or the new one, never a partial one; and hashing them."""

import hashlib
import os


def sha256_of(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path, data):
    """Writes ``data`` (str or bytes) to ``path`` through a temporary file and a rename."""
    partial = partial_name(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        with open(partial, mode) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def partial_name(path, suffix=""):
    folder, name = os.path.split(os.path.abspath(path))
    stem, extension = os.path.splitext(name)
    # Keras insists on the extension of what it saves (.keras, .weights.h5).
    extension = ".weights.h5" if name.endswith(".weights.h5") else extension
    stem = name[: -len(extension)] if extension else stem
    return os.path.join(folder, f".{stem}.partial-{os.getpid()}{suffix}{extension}")


def save_atomically(save, path):
    """Calls ``save(temporary)`` with a temporary path beside ``path`` (same extension), then
    renames it to ``path``: e.g. ``save_atomically(model.save_weights, "m.weights.h5")``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    partial = partial_name(path)
    try:
        save(partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def save_model_atomically(model, path):
    """``model.save(path)`` through a temporary ``.keras`` file and a rename."""
    save_atomically(model.save, path)
