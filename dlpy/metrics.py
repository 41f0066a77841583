"""FID, KID and the Inception Score of generated images, on a classifier that dlpy trains itself.

The usual Inception weights cannot be downloaded everywhere, so the features are the
penultimate layer (256 units) of dlpy's `cnn` classifier, trained for two epochs on the
dataset's training split with a fixed seed and cached in <dataset root>/dlpy-fid/. The numbers
compare dlpy runs on one dataset with each other; they are not the Inception FIDs of papers.
The floor, FID between real training and real test images, says how low a perfect generator goes.
The Inception Score reads the same classifier's softmax (its last layer on those features).
"""

import logging
import math
import signal
import time
from functools import partial

import torch

from dlpy.callbacks.progress import ProgressBar
from dlpy.data.vision import ImageData
from dlpy.errors import Interrupted
from dlpy.io import load_checkpoint, save_checkpoint
from dlpy.models.cnn import CNN
from dlpy.tasks.classification import Classification
from dlpy.trainer import Trainer

log = logging.getLogger(__name__)


def statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and covariance of (N, D) features, in double precision."""
    features = features.double()
    return features.mean(0), torch.cov(features.T)


def frechet_distance(
    mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor
) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)) (Heusel et al., 2017).

    The trace of the square root is the sum of the square roots of the eigenvalues of C1 C2,
    which are real and non-negative for covariance matrices (up to rounding, hence the clamp).
    """
    root_trace = torch.linalg.eigvals(cov1 @ cov2).real.clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + cov1.trace() + cov2.trace() - 2 * root_trace)


def fid(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between two sets of (N, D) features (Heusel et al., 2017)."""
    return frechet_distance(*statistics(a), *statistics(b))


def kid(a: torch.Tensor, b: torch.Tensor, subsets: int = 10, size: int = 1000) -> float:
    """Kernel Inception Distance (Binkowski et al., 2018), averaged over random subsets.

    The unbiased MMD^2 between `size` samples of each set, under the polynomial kernel
    k(x, y) = (x.y / d + 1)^3.
    """
    m = min(size, len(a), len(b))
    g = torch.Generator().manual_seed(0)
    estimates = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=g)[:m]].double()
        y = b[torch.randperm(len(b), generator=g)[:m]].double()
        kxx = kernel(x, x)
        kyy = kernel(y, y)
        # the diagonals k(x_i, x_i) are left out: that makes the estimate unbiased
        within = (kxx.sum() - kxx.diag().sum() + kyy.sum() - kyy.diag().sum()) / (m * (m - 1))
        estimates.append(within - 2 * kernel(x, y).mean())
    return float(torch.stack(estimates).mean())


def inception_score(probabilities: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) of (N, classes) softmax outputs (Salimans et al., 2016).

    High when each image is classified confidently (p(y|x) peaked) and the classes are all made
    (p(y), the mean of p(y|x), spread): at most the number of classes, at least 1. One score over
    the whole set, not the paper's mean over 10 splits of 5,000. xlogy makes 0 log 0 = 0.
    """
    p = probabilities.double()
    marginal = p.mean(0, keepdim=True)
    kl = (torch.xlogy(p, p) - torch.xlogy(p, marginal)).sum(1)
    return float(kl.mean().exp())


def code_information(probabilities: torch.Tensor, codes: torch.Tensor) -> float:
    """I(c; y) / H(c): how much of a categorical code the feature classifier reads in the images
    made from it, 0 (the code changes no class) to 1 (each code makes a class of its own).

    InfoGAN raises a bound on I(c; G(z, c)) (Chen et al., 2016, eq. 4); this measures it through
    the classifier, whose classes stand for what a person sees: I(c; y) = H(p(y)) - E_c H(p(y|c)),
    with p(y|c) the mean softmax over code c's images, divided by H(c) of codes drawn uniformly.
    Q's own loss cannot say this: a generator can hide its code in marks Q reads and a person
    does not see.
    """
    p = probabilities.double()
    drawn = codes.unique().tolist()  # every code, unless the images are fewer
    if len(drawn) < 2:
        return 0.0  # one code carries no information
    per_code = torch.stack([p[codes == c].mean(0) for c in drawn])

    def entropy(q: torch.Tensor) -> torch.Tensor:
        return -torch.xlogy(q, q).sum(-1)

    information = entropy(per_code.mean(0)) - entropy(per_code).mean()
    return float(information / math.log(len(drawn)))


def kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """KID's polynomial kernel (x.y / d + 1)^3 between every row of x and every row of y."""
    return (x @ y.T / x.shape[1] + 1) ** 3


class FeatureNet:
    """uint8 images -> penultimate-layer features of the dataset's own classifier."""

    def __init__(self, net: CNN, data: ImageData) -> None:
        self.net = net.eval()
        self.data = data.rescaled("standardize")
        self.floor = None  # FID between real train and real test images

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        body = self.net.classifier[:-1]  # everything but the last linear layer
        return torch.cat(
            [
                body(self.net.features(self.data.normalize(chunk))).float()
                for chunk in images.split(batch_size)
            ]
        )

    @torch.inference_mode()
    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """The classifier's softmax over the classes, from features this network gave."""
        return self.net.classifier[-1](features).softmax(1)


@torch.inference_mode(False)  # first use comes from inside an evaluation: step out to train
@torch.enable_grad()
def feature_network(data: ImageData) -> FeatureNet:
    """The cached feature network of this dataset, trained on first use.

    The training is seeded, in a forked random number generator: the run's own draws stay as
    they were.
    """
    shape = dict(
        in_channels=data.train.x.shape[1],
        image_size=data.train.x.shape[2],
        num_classes=len(data.classes),
    )
    net = CNN(
        **shape, layers=[32, "M", 64, "M", 128, "M"], batchnorm=True, fc=[256], dropout=0.5
    ).to(data.device)
    path = data.root / "dlpy-fid" / f"{data.name}-{len(data.train)}-{len(data.test)}.pt"
    if path.is_file():
        state = load_checkpoint(path, data.device)
        net.load_state_dict(state["task"])
        features = FeatureNet(net, data)
        features.floor = state["floor"]
        return features
    log.info(
        "training the FID feature network for %s first: 2 epochs, once per data set, cached in %s "
        "(model.task.fid=false skips FID)",
        data.name,
        path,
    )
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[data.device] if data.device.type == "cuda" else []):
        torch.manual_seed(0)
        train_data = data.rescaled("standardize")
        train_data.seed(0)
        task = Classification(net, optimizer=partial(torch.optim.Adam, lr=2e-3))
        bar = ProgressBar(label="FID feature network: ")
        trainer = Trainer(max_epochs=2, device=str(data.device), monitor="val/acc", callbacks=[bar])
        try:
            trainer.fit(task, train_data)
        except Interrupted as stop:  # its epoch and step are the feature network's, not the run's
            name = signal.Signals(stop.signum).name
            raise Interrupted(
                stop.signum, f"interrupted by {name} while the FID feature network trained"
            ) from None
    features = FeatureNet(net, data)
    features.floor = fid(features(data.train.x[:10000]), features(data.test.x[:10000]))
    save_checkpoint({"task": net.state_dict(), "floor": features.floor}, path)
    log.info(
        "FID feature network ready in %.0fs; the run's own training starts",
        time.perf_counter() - start,
    )
    return features
