"""Joint analyses across sources (issue 13 item 7): a stopped-pion and a reactor germanium detector with one
Lindhard k shared through the registry's scope override (``share``)."""

import numpy as np
import pytest

from cevns_jax.errors import CevnsInputError
from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, load_experiment, read_toml
from cevns_jax.nuisances import check_share, program_nuisances
from cevns_jax.stats.fisher import fisher_blocks
from cevns_jax.stats.forecast import ForecastSpec, program_labels

SHARE_K = (("quenching_k", "nucleus"),)


@pytest.fixture(scope="module")
def pair():
    data = read_toml(PRESET_DIR / "COH-Ge-mini.toml", "experiment")
    data["bins"] = {"energy_edges": [1.0, 2.0, 4.0, 15.0], "time_edges_us": [0.0, 1.0, 6.0], "energy_subdivisions": 2}
    return experiment_from_dict(data, label="COH-Ge-mini", base=PRESET_DIR), load_experiment("CONUS+-2025")


def test_one_quenching_k_for_every_germanium_detector_when_shared(pair):
    ge, conus = pair
    local, priors = program_labels(pair, ForecastSpec())
    assert local[0]["quenching_k"] == "COH-Ge-mini/quenching_k"  # per detector by default
    assert local[1]["quenching_k"] == "CONUS+-2025/quenching_k"
    assert local[0]["flux"] != local[1]["flux"]  # the SNS and the reactor: two normalisations
    local, priors = program_labels(pair, ForecastSpec(share=SHARE_K))
    assert local[0]["quenching_k"] == local[1]["quenching_k"] == "quenching_k"
    widths = dict(ge.info.priors)["quenching_k"], dict(conus.info.priors)["quenching_k"]
    assert priors["quenching_k"] == max(widths)  # shared labels take the widest declared prior
    assert local[0]["flux"] != local[1]["flux"]  # only the named nuisance is re-scoped


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_shared_fisher_is_the_projection_of_the_unshared_one(pair):
    # a shift shared by both detectors moves both k's together: F_shared = Pᵀ F P (chain rule), P mapping
    # (ŝ², k) to (ŝ², k_Ge, k_CONUS); checked on the data blocks, summed over the two detectors
    apart = fisher_blocks(pair, ("sin2_theta_w",), ("quenching_k",))
    joint = fisher_blocks(pair, ("sin2_theta_w",), ("quenching_k",), SHARE_K)
    assert apart.labels == ("sin2_theta_w", "COH-Ge-mini/quenching_k", "CONUS+-2025/quenching_k")
    assert joint.labels == ("sin2_theta_w", "quenching_k")
    P = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    F_apart, F_joint = np.sum(np.asarray(apart.blocks), axis=0), np.sum(np.asarray(joint.blocks), axis=0)
    assert np.all(np.diag(F_apart) > 0)
    np.testing.assert_allclose(F_joint, P.T @ F_apart @ P, rtol=1e-10)


@pytest.mark.parametrize("share, field", [
    ((("quenching_k", "reactor"),), "scope"),
    ((("no_such_nuisance", "nucleus"),), "no_such_nuisance"),
    ((("quenching_k", "nucleus"), ("quenching_k", "global")), "more than once"),
    ((("quenching_k",),), "pairs"),
])
def test_bad_share_is_a_named_error(share, field):
    with pytest.raises(CevnsInputError, match=field):
        check_share(share)
    with pytest.raises(CevnsInputError, match=field):
        program_nuisances([], [], share)
