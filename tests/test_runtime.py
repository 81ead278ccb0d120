"""The persistent compilation cache: opt-in for the library, on for the CLI and jobs, opt-out by environment."""

import os
import subprocess
import sys
import textwrap


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def test_compilation_cache_folder_and_opt_out(tmp_path):
    code = """
        import jax, jax.numpy as jnp, cevns_jax
        cevns_jax.enable_x64()
        print(cevns_jax.enable_compilation_cache())
        jax.jit(lambda x: jnp.sin(x) * 2.0)(jnp.arange(3.0)).block_until_ready()
    """
    folder = tmp_path / "cache"
    r = _run(code, {"CEVNS_JAX_COMPILATION_CACHE": str(folder)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(folder) and any(folder.iterdir())  # the program was stored
    off = _run(code, {"CEVNS_JAX_COMPILATION_CACHE": "0", "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert off.returncode == 0 and off.stdout.strip() == "None" and not (tmp_path / "xdg").exists()
    default = _run(code, {"CEVNS_JAX_COMPILATION_CACHE": "", "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert default.stdout.strip() == str(tmp_path / "xdg" / "cevns_jax" / "jax")
