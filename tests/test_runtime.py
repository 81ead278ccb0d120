"""The persistent compilation cache: opt-in for the library, on for the CLI and jobs, opt-out by environment."""

import math
import os
import subprocess
import sys
import textwrap

import cevns_jax


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


def test_fast_cpu_compilation_flags_opt_out_and_user_settings():
    """The CPU compiler flags are appended to XLA_FLAGS (and XLA starts with them), an opt-out leaves
    XLA_FLAGS untouched, and a flag the user set keeps the user's value."""
    code = """
        import os, jax, jax.numpy as jnp, cevns_jax
        cevns_jax.enable_x64()
        print(cevns_jax.fast_cpu_compilation())
        print(os.environ.get("XLA_FLAGS", ""))
        print(float(jax.jit(lambda x: jnp.sum(jnp.sin(x)))(jnp.arange(3.0))))
    """
    flag = cevns_jax.CPU_COMPILE_FLAGS[0]
    on = _run(code, {"XLA_FLAGS": "--xla_force_host_platform_device_count=1", "CEVNS_JAX_XLA_DEFAULTS": ""})
    assert on.returncode == 0, on.stderr
    applied, flags, value = on.stdout.split("\n")[:3]
    assert applied == "True" and flags.split() == ["--xla_force_host_platform_device_count=1", flag]
    assert abs(float(value) - sum(math.sin(x) for x in (0.0, 1.0, 2.0))) < 1e-14
    off = _run(code, {"XLA_FLAGS": "", "CEVNS_JAX_XLA_DEFAULTS": "0"})
    assert off.returncode == 0 and off.stdout.split("\n")[:2] == ["False", ""]
    name = flag.split("=")[0]
    user = _run(code, {"XLA_FLAGS": f"{name}=true", "CEVNS_JAX_XLA_DEFAULTS": ""})
    assert user.returncode == 0 and user.stdout.split("\n")[1] == f"{name}=true"


def test_fast_cpu_compilation_leaves_unverified_jaxlib_alone(monkeypatch):
    """A jaxlib whose XLA may not know the flags (0.11.2 aborts on --xla_cpu_use_fusion_emitters) or an
    unparsable version gets no flags: XLA_FLAGS stays as the user set it."""
    import jaxlib

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    monkeypatch.setenv("CEVNS_JAX_XLA_DEFAULTS", "")
    for version in ("0.11.2", "0.9.1", "1.0.0", "dev"):
        monkeypatch.setattr(jaxlib, "__version__", version)
        assert cevns_jax.fast_cpu_compilation() is False
        assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=1"
    monkeypatch.setattr(jaxlib, "__version__", "0.10.2")
    assert cevns_jax.fast_cpu_compilation() is True
    assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=1", *cevns_jax.CPU_COMPILE_FLAGS]
