"""Distribution metrics on extracted features: the Frechet distance (FID/FVD) and the Inception
Score (IS).

Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017; FVD,
Unterthiner et al. 2018, with video features):

    d = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2))

tr((S_1 S_2)^(1/2)) is the sum of the square roots of the eigenvalues of the symmetric positive
semi-definite matrix S_1^(1/2) S_2 S_1^(1/2) (same spectrum as S_1 S_2), so the square root is
taken by two symmetric eigen-decompositions in float64; tiny negative eigenvalues from rounding
are clipped to 0. No complex parts, and no failure on singular covariances (fewer samples than
feature dimensions).

Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), with p(y) the mean of
p(y|x) over the samples; computed on `splits` equal parts and reported as their mean and std.
"""
from __future__ import annotations

import numpy as np

PROBABILITY_TOLERANCE = 1e-3   # how far a row of class probabilities may sum from 1


def _check_features(features, name: str) -> np.ndarray:
    features = np.asarray(features, np.float64)
    if features.ndim != 2:
        raise ValueError(f"{name} must be a (samples, feature width) array, got shape "
                         f"{features.shape}.")
    if len(features) < 2:
        raise ValueError(f"{name} has {len(features)} sample(s); a covariance needs at least 2.")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{name} holds NaN or infinite values.")
    return features


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) of features (N, D), N >= 2, in float64."""
    features = _check_features(features, "features")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(
        features.shape[1], features.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_from_statistics(mean_1, cov_1, mean_2, cov_2) -> float:
    """Frechet distance between Gaussians N(mean_1, cov_1) and N(mean_2, cov_2)."""
    mean_1, mean_2 = np.asarray(mean_1, np.float64), np.asarray(mean_2, np.float64)
    cov_1, cov_2 = np.asarray(cov_1, np.float64), np.asarray(cov_2, np.float64)
    if mean_1.shape != mean_2.shape or cov_1.shape != cov_2.shape or \
            cov_1.shape != mean_1.shape * 2:
        raise ValueError(f"Feature widths differ: means {mean_1.shape} and {mean_2.shape}, "
                         f"covariances {cov_1.shape} and {cov_2.shape}.")
    for array in (mean_1, mean_2, cov_1, cov_2):
        if not np.all(np.isfinite(array)):
            raise ValueError("The statistics hold NaN or infinite values.")
    root_1 = _psd_sqrt(cov_1)
    middle = root_1 @ cov_2 @ root_1
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    distance = np.sum((mean_1 - mean_2) ** 2) + np.trace(cov_1) + np.trace(cov_2) - 2 * cross
    return float(max(distance, 0.0))


def frechet_distance(features_1, features_2) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N1, D) and (N2, D), each
    with at least 2 samples; 0 for identical sets, symmetric in its arguments."""
    features_1 = _check_features(features_1, "features_1")
    features_2 = _check_features(features_2, "features_2")
    if features_1.shape[1] != features_2.shape[1]:
        raise ValueError(f"Feature widths differ: {features_1.shape[1]} and "
                         f"{features_2.shape[1]}.")
    return frechet_distance_from_statistics(*feature_statistics(features_1),
                                            *feature_statistics(features_2))


def _check_probabilities(probabilities) -> np.ndarray:
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] < 1:
        raise ValueError(f"probabilities must be a (samples, classes) array with at least one "
                         f"sample, got shape {probabilities.shape}.")
    if not np.all(np.isfinite(probabilities)):
        raise ValueError("probabilities hold NaN or infinite values.")
    if np.any(probabilities < 0):
        raise ValueError(f"probabilities must be >= 0, got a minimum of {probabilities.min()}.")
    sums = probabilities.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1)))
    if abs(sums[worst] - 1) > PROBABILITY_TOLERANCE:
        raise ValueError(f"Each row of probabilities must sum to 1 (softmax outputs, not "
                         f"logits); row {worst} sums to {sums[worst]:.6g}.")
    return probabilities


def inception_score(probabilities, splits: int = 1) -> tuple[float, float]:
    """(mean, std) over `splits` equal parts of exp(mean KL(p(y|x) || p(y))) for class
    probabilities (N, C), rows summing to 1: 1 for identical predictions, C for confident
    predictions spread evenly over the C classes."""
    probabilities = _check_probabilities(probabilities)
    if int(splits) != splits or not 1 <= splits <= len(probabilities):
        raise ValueError(f"splits must be an integer in [1, {len(probabilities)}] (the number "
                         f"of samples), got {splits!r}.")
    scores = []
    for part in np.array_split(probabilities, int(splits)):
        marginal = part.mean(axis=0, keepdims=True)
        # 0 log 0 = 0: where p(y|x) is 0 the term vanishes (and the marginal may be 0 too).
        ratio = np.where(part > 0, part / np.where(marginal > 0, marginal, 1.0), 1.0)
        kl = np.sum(part * np.log(ratio), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
