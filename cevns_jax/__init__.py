"""cevns_jax."""
