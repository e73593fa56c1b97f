"""The checkpoint's files are read into the page cache while the process starts, and no longer once the load reads
them itself."""

import threading

from helios import loading
from helios.loading import LoadOptions, _load
from helios.placement.read_ahead import CHUNK, ReadAhead, checkpoint_files
from helios.placement.weights import WeightFiles


def test_it_reads_the_files_in_order_up_to_its_budget(tmp_path):
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.safetensors")
        files[-1].write_bytes(bytes([i]) * (3 * 2**20))
    everything = ReadAhead(files, budget=2**40)
    everything.join()
    assert everything.read == 9 * 2**20
    some = ReadAhead(files, budget=4 * 2**20)
    some.join()
    assert 4 * 2**20 <= some.read < 9 * 2**20 and some.read <= 4 * 2**20 + CHUNK


def test_the_load_reads_ahead_and_stops_before_its_own_reads(tiny_checkpoint, monkeypatch):
    """The tiny files are read over and over, so the reading lasts until the load stops it."""
    made, overlapping = [], []
    read = WeightFiles._read

    def watched_of(folder):
        made.append(ReadAhead(checkpoint_files(folder) * 10**6, budget=2**50))
        return made[-1]

    def watched_read(self, *args):
        overlapping.append(any(t.name == "read-ahead" and t.is_alive() for t in threading.enumerate()))
        return read(self, *args)

    monkeypatch.setattr(loading.ReadAhead, "of", staticmethod(watched_of))
    monkeypatch.setattr(WeightFiles, "_read", watched_read)
    _load(str(tiny_checkpoint("distilled")), LoadOptions(device="cpu"))
    (ahead,) = made
    assert [f.parent.name for f in ahead.files][:1] == ["vae"] and "transformer" in {f.parent.name for f in ahead.files}
    assert ahead.read > sum(f.stat().st_size for f in checkpoint_files(ahead.files[0].parents[1])) and not ahead.is_alive()
    assert overlapping and not any(overlapping), "the load's own reads began while the read-ahead still ran"
