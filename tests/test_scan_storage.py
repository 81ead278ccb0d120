"""Scan results are never reused for other inputs, and damaged chunks are found, named and recomputed alone."""

import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from cevns_jax import experiment
from cevns_jax import replace
from cevns_jax.errors import CevnsInputError
from cevns_jax.provenance import content_hash, source_hash
from cevns_jax.scan import Axis, assemble, run_scan, scan_identity

AXES = [Axis("x", 0.0, 3.0, 7), Axis("y", 1.0, 100.0, 5, "log")]  # 35 points: 6 chunks of 6


def toy(p):
    return {"f": jnp.sin(p["x"]) * jnp.log(p["y"]), "g": jnp.stack([p["x"], p["y"] ** 2])}


def test_content_hash_sees_every_leaf_and_static_field(presets):
    ge = presets["COH-Ge-mini"]
    assert content_hash(ge) == content_hash(experiment.load_experiment("COH-Ge-mini"))  # another load, same hash
    heavier = replace(ge, detector=replace(ge.detector, mass_kg=ge.detector.mass_kg * 100))
    renamed = replace(ge, info=replace(ge.info, name="other"))  # a static field
    hashes = {content_hash(x) for x in (ge, heavier, renamed, {"g": 1.0}, {"g": 1.0 + 1e-16}, {"g": np.float32(1.0)})}
    assert len(hashes) == 5  # 1.0 + 1e-16 == 1.0 in float64: same bytes, same hash
    assert len(source_hash()) == 64


def test_a_scan_for_other_inputs_is_refused_naming_what_changed(tmp_path, presets):
    ge = presets["COH-Ge-mini"]
    out = tmp_path / "scan"
    run_scan(toy, AXES, out, chunk_size=6, progress=False, identity={"experiments": [ge]})
    heavier = replace(ge, detector=replace(ge.detector, mass_kg=ge.detector.mass_kg * 100))
    with pytest.raises(CevnsInputError, match=r"other inputs \(the inputs"):
        run_scan(toy, AXES, out, chunk_size=6, progress=False, identity={"experiments": [heavier]})
    again = run_scan(toy, AXES, out, chunk_size=6, progress=False, identity={"experiments": [ge]})
    assert again.computed_chunks == []  # the same inputs resume
    ident = scan_identity(AXES, None, {"experiments": [ge]})
    assert again.meta["identity"] == ident and ident != scan_identity(AXES, None, {"experiments": [heavier]})


@pytest.mark.parametrize("damage", ["zero-byte", "truncated", "garbage", "copied-over", "edited"])
def test_damaged_chunk_is_named_and_recomputed_alone(tmp_path, capsys, damage):
    out = tmp_path / "scan"
    fresh = run_scan(toy, AXES, out, chunk_size=6, progress=False)
    chunks = sorted(out.glob("chunk_*.npz"))
    victim = chunks[3]
    if damage == "zero-byte":
        victim.write_bytes(b"")
    elif damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:-40])
    elif damage == "garbage":
        victim.write_bytes(os.urandom(victim.stat().st_size))
    elif damage == "copied-over":
        shutil.copy(chunks[2], victim)  # a valid chunk in the wrong place
    else:  # a valid npz whose values were altered without updating its checksum
        with np.load(victim) as z:
            data = {k: z[k] for k in z.files}
        data["f"] = data["f"] + 1.0
        np.savez(victim, **data)
    with pytest.raises(CevnsInputError, match=f"{victim.name}: "):
        assemble(out)
    stamps = {p.name: p.stat().st_mtime_ns for p in chunks if p != victim}
    capsys.readouterr()
    res = run_scan(toy, AXES, out, chunk_size=6, progress=False)
    assert res.computed_chunks == [3]
    assert victim.name in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in chunks if p != victim} == stamps
    for k in ("f", "g"):
        np.testing.assert_array_equal(res.values[k], fresh.values[k])


def test_two_processes_share_one_results_folder_bit_for_bit(tmp_path):
    """jax.distributed on localhost (CPU, two processes): each computes every other chunk into one
    folder, both wait, and the assembled result equals a single-process run exactly."""
    import socket
    import subprocess
    import sys
    import textwrap

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    code = textwrap.dedent(f"""
        import sys, jax
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address="localhost:{port}", num_processes=2,
                                   process_id=int(sys.argv[1]))
        import jax.numpy as jnp
        from cevns_jax.scan import Axis, run_scan
        def toy(p):
            return {{"f": jnp.sin(p["x"]) * jnp.log(p["y"]), "g": jnp.stack([p["x"], p["y"] ** 2])}}
        AXES = [Axis("x", 0.0, 3.0, 7), Axis("y", 1.0, 100.0, 5, "log")]
        r = run_scan(toy, AXES, {str(tmp_path / "two")!r}, chunk_size=6, progress=False)
        print("computed", jax.process_index(), jax.process_count(), r.computed_chunks)
    """)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    lines = sorted(next(line for line in o[0].splitlines() if line.startswith("computed")) for o in outs)
    assert lines == ["computed 0 2 [0, 2, 4]", "computed 1 2 [1, 3, 5]"]
    single = run_scan(toy, AXES, tmp_path / "one", chunk_size=6, progress=False)
    both = assemble(tmp_path / "two")
    for k in ("f", "g"):
        np.testing.assert_array_equal(both[k], single.values[k])


def test_progress_names_the_scan_and_announces_compilation(tmp_path, capsys):
    run_scan(toy, AXES, tmp_path / "p", chunk_size=6, progress=True, label="toy study: set A")
    err = capsys.readouterr().err
    assert "[scan] toy study: set A: compiling (35 points to compute in 6 chunks of 6)" in err
    assert "compiled and ran the first chunk" in err and "35/35" in err
    run_scan(toy, AXES, tmp_path / "p", chunk_size=6, progress=True, label="again")
    assert capsys.readouterr().err == ""  # nothing to compute, nothing printed
